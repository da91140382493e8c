"""Reliability KPIs of one flow: counts, time since the last success, failure streaks, MTTR.

Runs are taken in `(created_at, id)` order. A failure streak is a maximal run of consecutive
`error` runs. An `aborted` run neither extends nor breaks a streak: it is skipped, because a
cancellation says nothing about whether the flow works (error, aborted, error is a streak of
2; error, aborted, success is a streak of 1 that recovered at the success). A streak
*recovers* at the next success; its time to recovery is that success's created_at minus the
streak's first failure's. MTTR is the mean over recovered streaks; the current streak (errors
after the last success) has not recovered and is not in it.

With a time range, only runs inside it count: a streak that began before `start` is counted
from its first failure in range, and "now" is `end` when given. A success stamped after "now"
(a client's clock ahead: a day is accepted) is 0 seconds ago.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc, utc_now
from analytics.core.context import Context
from analytics.core.store import Connection, in_snapshot
from analytics.history.scope import open_scope


@dataclass(frozen=True, slots=True)
class Reliability:
    as_of: datetime
    runs: int
    success_count: int
    error_count: int
    aborted_count: int
    last_success_at: datetime | None
    seconds_since_last_success: float | None
    last_failure_at: datetime | None
    current_failure_streak: int
    current_streak_started_at: datetime | None
    longest_failure_streak: int
    longest_streak_started_at: datetime | None
    recovered_streaks: int
    mttr_seconds: float | None


_COUNTS = """
SELECT
    count(*),
    count(*) FILTER (WHERE status = 'success'),
    count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE status = 'aborted'),
    max(created_at) FILTER (WHERE status = 'success'),
    max(created_at) FILTER (WHERE status = 'error')
FROM executions WHERE {scope}
"""

# Each success opens a group; the errors after it (until the next success) are its streak.
# Group 0 holds the errors before the first success. The success opening group k + 1 is
# the one that ends group k's streak.
_STREAKS = """
WITH ordered AS (
    SELECT created_at, status,
        sum(CASE WHEN status = 'success' THEN 1 ELSE 0 END)
            OVER (ORDER BY created_at, id ROWS UNBOUNDED PRECEDING) AS grp
    FROM executions WHERE {scope} AND status <> 'aborted'
),
groups AS (
    SELECT grp,
        count(*) FILTER (WHERE status = 'error') AS failures,
        min(created_at) FILTER (WHERE status = 'error') AS first_failure,
        min(created_at) AS opened_at
    FROM ordered GROUP BY grp
),
recovered AS (
    SELECT epoch(n.opened_at - s.first_failure) AS seconds
    FROM groups s JOIN groups n ON n.grp = s.grp + 1
    WHERE s.failures > 0
)
SELECT
    (SELECT coalesce(max(failures), 0) FROM groups),
    (SELECT first_failure FROM groups WHERE failures > 0 ORDER BY failures DESC, grp LIMIT 1),
    (SELECT failures FROM groups ORDER BY grp DESC LIMIT 1),
    (SELECT first_failure FROM groups ORDER BY grp DESC LIMIT 1),
    (SELECT count(*) FROM recovered),
    (SELECT avg(seconds) FROM recovered)
"""


def reliability(
    ctx: Context,
    viewer: Viewer,
    flow_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Reliability:
    """KPIs over the runs the caller sees in `[start, end)`; see the module docstring for rules.

    The longest streak's start is the earliest of the longest ones when several tie.
    """
    scope = open_scope(ctx, viewer, flow_id, start, end)
    as_of = naive_utc(end) if end is not None else utc_now()

    def read(c: Connection) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        counts = c.execute(_COUNTS.format(scope=scope.sql), scope.params).fetchall()[0]
        streaks = c.execute(_STREAKS.format(scope=scope.sql), scope.params).fetchall()[0]
        return counts, streaks

    counts, streaks = ctx.store.read(in_snapshot(read))
    runs, successes, errors, aborted, last_success, last_failure = counts
    longest, longest_started, current, current_started, recovered, mttr = streaks
    return Reliability(
        as_of=as_of,
        runs=runs,
        success_count=successes,
        error_count=errors,
        aborted_count=aborted,
        last_success_at=last_success,
        # a run stamped ahead of the clock (a day is accepted) succeeded just now, not in -12 h
        seconds_since_last_success=None
        if last_success is None
        else max(0.0, (as_of - last_success).total_seconds()),
        last_failure_at=last_failure,
        current_failure_streak=current or 0,
        current_streak_started_at=current_started if current else None,
        longest_failure_streak=longest,
        longest_streak_started_at=longest_started,
        recovered_streaks=recovered,
        mttr_seconds=mttr,
    )
