"""Which rolled (flow, day) pairs a write changed, recorded in `rollup_dirty`.

The daily rollups (analytics/trends/rollups.py) answer rolled days from their own table,
except the pairs marked here: those are read from `executions` until the refresh job rebuilds
them. So every write that changes or removes runs of an already rolled day (a delete, a late
import, a re-price, retention, a restore) marks its pairs, in its own transaction, before the
runs change or go. History owns this record because history's writes make it; the rollups
only read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from analytics.core.store import Connection, Store


def invalidate(conn: Connection, where: str, params: list[Any]) -> None:
    """Mark the rolled (flow, day) pairs of the runs matching `where` dirty. Call it in the
    write's own transaction, before the runs change or go."""
    conn.execute(
        "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT flow_id, CAST(created_at AS DATE)"
        f" FROM executions WHERE ({where}) AND created_at < (SELECT max(rolled_until) FROM rollup_state)",
        params,
    )


def mark_dirty(conn: Connection, pairs: Iterable[tuple[str, date]]) -> None:
    pairs = sorted(set(pairs))
    if pairs:
        conn.execute(
            "INSERT OR IGNORE INTO rollup_dirty SELECT unnest(?::VARCHAR[]), unnest(?::DATE[])",
            [[f for f, _ in pairs], [d for _, d in pairs]],
        )


def rolled_until(conn: Connection) -> date | None:
    rows = conn.execute("SELECT rolled_until FROM rollup_state").fetchall()
    return rows[0][0] if rows else None


@dataclass(slots=True)
class RollupState:
    """The rollups as ingest and trends see them without a query, like the counters: ingest
    compares each run's day with `until` on the writer thread, and a trend reads rollups only
    when `runs` says the store is big. Kept on the Context (the CLI imports runs too), written
    after each rolled chunk commits and by `load`."""

    until: date | None = None  # days before this are rolled up; None: nothing rolled
    runs: int = 0  # how many runs the rollups held at the last refresh: the store's size

    def load(self, conn: Connection) -> None:
        """One snapshot: the date and the count agree."""
        runs = conn.execute("SELECT coalesce(sum(runs), 0) FROM trend_rollups").fetchall()[0][0]
        self.until, self.runs = rolled_until(conn), int(runs)

    def note_ingest(self, store: Store, rows: list[tuple[str, datetime]]) -> None:
        """After an ingest commit (on the writer, before the caller's ack): runs of already
        rolled days make them dirty. Live runs (today) cost a date comparison. Were the process
        to die between the two commits, the refresh job's count check rebuilds the day."""
        until = self.until
        if until is None:
            return
        late = {(fid, at.date()) for fid, at in rows if at.date() < until}
        if late:
            store.write_now(lambda c: mark_dirty(c, late))
