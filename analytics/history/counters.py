"""Exact per-(flow, user) execution counters kept in memory, so stats are one snapshot in µs.

The peer computes stats with six queries that are not one snapshot; even one DuckDB query is
~1-30 ms on a big flow. This process owns every write, so counters built once at start and
updated by the writer after each commit are exact: appends add, deletes recompute the flows
they touched from the table. Stats for a flow sum its users' counters (a reader who may not
see every execution gets only their own entry).

A recount reads the table inside the write that changed it (`write_recounting`), and is
installed by that write's after-commit hook: the writer commits several writes together and
runs their hooks after, in order, so a recount read after the commit would already hold the
appends queued behind it in the group, which their own hooks then add a second time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from analytics.core.store import Connection, Store

_STATUS_INDEX = {"success": 0, "error": 1, "aborted": 2}
T = TypeVar("T")


def whole_ms_mean(time_sum: int, runs: int) -> float:
    """The mean duration in whole milliseconds (the panel prints "N ms"), a half rounded up, from
    the exact sum: `round(time_sum / runs)` rounded halves to even (2.5 -> 2) and, past 2**53,
    rounded the float division's error too (a mean of ...249.4 answered ...250)."""
    return float((2 * time_sum + runs) // (2 * runs)) if runs else 0.0


@dataclass(frozen=True, slots=True)
class Stats:
    total_executions: int
    success_count: int
    error_count: int
    aborted_count: int
    avg_execution_time: float
    last_execution_at: datetime | None


@dataclass(frozen=True, slots=True)
class Recount:
    """Counters read from the table: of `flow_ids` (None: of every flow), to install."""

    flow_ids: frozenset[str] | None
    cells: dict[str, dict[str, _Cell]]


class _Cell:
    __slots__ = ("counts", "last", "time_sum")

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.time_sum = 0
        self.last: datetime | None = None

    def add(self, status: str, execution_time: int, created_at: datetime, n: int = 1) -> None:
        self.counts[_STATUS_INDEX[status]] += n
        self.time_sum += execution_time
        if self.last is None or created_at > self.last:
            self.last = created_at


class Counters:
    """Also keeps a version per flow, bumped by every change, for caches of per-flow answers."""

    def __init__(self) -> None:
        self._flows: dict[str, dict[str, _Cell]] = {}
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def version(self, flow_id: str) -> int:
        return self._versions.get(flow_id, 0)

    def _bump(self, flow_ids: Iterable[str]) -> None:
        for fid in flow_ids:
            self._versions[fid] = self._versions.get(fid, 0) + 1

    def load(self, conn: Connection, flow_ids: Iterable[str] | None = None) -> None:
        """(Re)build from the table: all flows, or only those given. Only where no write can
        commit meanwhile (at start); else `write_recounting`, or `count` inside a write and
        `install` at its commit (the Open WebUI import's chunks)."""
        self.install(self.count(conn, flow_ids))

    @staticmethod
    def count(conn: Connection, flow_ids: Iterable[str] | None = None) -> Recount:
        """The table's counters as `conn` sees it: all flows, or only those given."""
        sql = (
            "SELECT flow_id, user_id, status, count(*), sum(execution_time), max(created_at) FROM executions"
        )
        params: list[object] = []
        ids = None if flow_ids is None else frozenset(flow_ids)
        if ids is not None:
            if not ids:
                return Recount(ids, {})
            sql += " WHERE flow_id IN (SELECT unnest(?::VARCHAR[]))"
            params.append(sorted(ids))
        fresh: dict[str, dict[str, _Cell]] = {}
        for flow_id, user_id, status, n, time_sum, last in conn.execute(
            sql + " GROUP BY ALL", params
        ).fetchall():
            cell = fresh.setdefault(flow_id, {}).setdefault(user_id, _Cell())
            cell.add(status, int(time_sum), last, n)
        return Recount(ids, fresh)

    def install(self, recount: Recount) -> None:
        with self._lock:
            if recount.flow_ids is None:
                self._bump(recount.cells)
                self._flows = recount.cells
                return
            self._bump(recount.flow_ids)
            for fid in recount.flow_ids:
                if fid in recount.cells:
                    self._flows[fid] = recount.cells[fid]
                else:
                    self._flows.pop(fid, None)

    def write_recounting(
        self,
        store: Store,
        work: Callable[[Connection], T],
        flow_ids: Callable[[T], Iterable[str]],
        *,
        after_commit: Callable[[T], None] | None = None,
        frees_space: bool = False,
    ) -> T:
        """`store.write(work)`, then the flows `flow_ids(result)` recounted as the write left
        them: read in its transaction, installed after its commit (see the module docstring)."""
        counted: list[Recount] = []

        def work_then_count(c: Connection) -> T:
            result = work(c)
            counted[:] = [self.count(c, flow_ids(result))]
            return result

        def installed(result: T) -> None:
            if after_commit is not None:
                after_commit(result)
            self.install(counted[0])

        return store.write(work_then_count, after_commit=installed, frees_space=frees_space)

    def add(
        self,
        flow_ids: list[str],
        user_ids: list[str],
        statuses: list[str],
        times: list[int],
        created: list[datetime],
    ) -> None:
        with self._lock:
            self._bump(set(flow_ids))
            for fid, uid, status, t, at in zip(flow_ids, user_ids, statuses, times, created, strict=True):
                self._flows.setdefault(fid, {}).setdefault(uid, _Cell()).add(status, t, at)

    def stats(self, flow_id: str, *, only_user: str | None = None) -> Stats:
        counts = [0, 0, 0]
        time_sum = 0
        last: datetime | None = None
        with self._lock:
            cells = self._flows.get(flow_id, {})
            if only_user is None:
                chosen = list(cells.values())
            else:
                chosen = [cells[only_user]] if only_user in cells else []
            for cell in chosen:
                for i in range(3):
                    counts[i] += cell.counts[i]
                time_sum += cell.time_sum
                if cell.last is not None and (last is None or cell.last > last):
                    last = cell.last
        total = sum(counts)
        return Stats(total, counts[0], counts[1], counts[2], whole_ms_mean(time_sum, total), last)
