"""Metrics over time: measures per time bucket (optionally per group), with period-over-period.

One query answers a chart: `metrics(ctx, viewer, query)` returns a row per bucket (and group)
as an Arrow table, every bucket present (empty ones are zeros), plus totals for the range and
for the same-length range just before it. Row visibility (`visible_clause`) is ANDed into the
one place runs are read, so no measure and no group label can come from a run the caller may
not see. Identifiers come only from the whitelists below; every value is a `?` parameter.

Decisions, so every consumer reads the numbers the same way:
- failure_rate = error / runs. Aborted runs count in `runs` but are not failures: an abort is
  a person or a caller stopping the run, not the flow breaking.
- Percentiles are exact (`quantile_cont`, linear interpolation), except over scopes of more
  than ROLLUP_MIN_RUNS runs asked by whole days: those read the daily rollups (rollups.py),
  whose counts and sums are exact and whose percentiles are within ~2 % (a duration that
  really occurred at the lower rank, to the bin's precision); `percentiles_approximate` says
  which. Small flows (SMALL_SCOPE_RUNS) fetch their rows and aggregate in Python: faster than
  the grouped scan's fixed cost, and exact.
- Gaps, not zeros: a bucket (or bucket x group) without runs has 0 for its counts (runs,
  success, error, aborted, tokens) and null for its rates, averages, percentiles and cost
  (`NULLABLE`): "nothing happened" is not "0 % failed in 0 ms for $0". Averages and
  percentiles are also null where runs exist but none reported a duration (nodes), and cost
  where runs exist but none has a known cost (no price matches their models: a run's own cost
  is then null, not 0, and /cost says the same); else cost sums the known ones. Totals follow
  the same rule, and a change against a null is null.
- Buckets are calendar-aligned in UTC (`time_bucket`): hours, days, ISO weeks from Monday,
  months from the 1st. With `tz` (an IANA zone, e.g. Europe/Berlin), day, week and month
  buckets start at that zone's local midnight instead, DST included (a day is then 23 or 25
  hours); shorter buckets stay on the UTC grid (in whole-hour zones the same local hours).
  The daily rollups are per UTC day, so a zoned query always takes an exact path; its bucket
  starts are computed here (zoneinfo) and each run is put in its bucket by an ASOF join. A row's `bucket` is the bucket's start, so the first one may begin before
  `start`; only runs in [start, end) are counted. `auto` picks, from 1, 5 and 15 minutes,
  1 and 6 hours, day, week and month, the width whose bucket count is nearest 50 (log scale).
  More than MAX_BUCKETS buckets is refused (422 on `bucket`).
- Grouped, the `max_groups` groups with most runs in the range are kept (ties by label), each
  with a row in every bucket; `groups_truncated` says when more had runs.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import cache, partial
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from analytics.access.permissions import Viewer, require_flow_access
from analytics.core.clock import UtcTime, naive_utc
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError
from analytics.core.numbers import Count
from analytics.core.saturating import capped, capped_sum
from analytics.core.store import Connection, in_snapshot
from analytics.history import changes
from analytics.history.filters import AnyOf, Clause, ExecutionFilter, visible_clause, where
from analytics.history.scope import check_range
from analytics.trends import rollups

MAX_BUCKETS = 2000
AUTO_TARGET = 50
_EARLIEST = datetime(1970, 1, 1)
_LATEST = datetime(2200, 1, 1)


@cache
def _zone_names() -> frozenset[str]:
    """The IANA zones a `tz` may name. ZoneInfo opens any file under the zone folders: `right/...`
    (clocks counting leap seconds: Paris midnights an hour off all winter), `posixrules`, the
    host's `localtime` (each server would read its own) and `Factory` (no place's time)."""
    return frozenset(available_timezones() - {"localtime", "Factory"})


class Measure(StrEnum):
    RUNS = "runs"
    SUCCESS = "success"
    ERROR = "error"
    ABORTED = "aborted"
    FAILURE_RATE = "failure_rate"
    AVG_DURATION = "avg_duration"
    P50_DURATION = "p50_duration"
    P90_DURATION = "p90_duration"
    P95_DURATION = "p95_duration"
    P99_DURATION = "p99_duration"
    TOKENS_IN = "tokens_in"
    TOKENS_OUT = "tokens_out"
    COST = "cost"


_PERCENTILES = {Measure.P50_DURATION, Measure.P90_DURATION, Measure.P95_DURATION, Measure.P99_DURATION}


# Aggregates over the base relation, whose columns are the same at both levels: per run
# (executions) or per node run (group_by node or model). Null durations (nodes that reported
# none) are left out of averages and percentiles.
_MEASURES: dict[Measure, str] = {
    Measure.RUNS: "count(*)",
    Measure.SUCCESS: "count(*) FILTER (WHERE status = 'success')",
    Measure.ERROR: "count(*) FILTER (WHERE status = 'error')",
    Measure.ABORTED: "count(*) FILTER (WHERE status = 'aborted')",
    Measure.FAILURE_RATE: "count(*) FILTER (WHERE status = 'error') / count(*)",
    Measure.AVG_DURATION: "avg(duration)",
    Measure.TOKENS_IN: f"coalesce({capped_sum('tokens_in')}, 0)",
    Measure.TOKENS_OUT: f"coalesce({capped_sum('tokens_out')}, 0)",
    Measure.COST: "fsum(cost)",  # null when no run has a known cost; fsum: see cost/report.py
}
# All percentiles asked for come from one quantile_cont over a list: one sort, not one each
# (1.5x faster on 100k runs).
_QUANTILES: dict[Measure, str] = {
    Measure.P50_DURATION: "0.5",
    Measure.P90_DURATION: "0.9",
    Measure.P95_DURATION: "0.95",
    Measure.P99_DURATION: "0.99",
}
# measures with no value over no runs (or, for durations, no timed runs): null, a gap on a chart
NULLABLE = frozenset({Measure.FAILURE_RATE, Measure.AVG_DURATION, Measure.COST, *_QUANTILES})
_INTEGER = frozenset(
    {Measure.RUNS, Measure.SUCCESS, Measure.ERROR, Measure.ABORTED, Measure.TOKENS_IN, Measure.TOKENS_OUT}
)


class GroupBy(StrEnum):
    FLOW = "flow"
    FLOW_VERSION = "flow_version"
    NODE = "node"
    MODEL = "model"
    STATUS = "status"
    USER = "user"


_RUN_GROUPS: dict[GroupBy, str] = {
    GroupBy.FLOW: "flow_id",
    GroupBy.FLOW_VERSION: "flow_version",
    GroupBy.STATUS: "status",
    GroupBy.USER: "user_id",
}
_NODE_GROUPS: dict[GroupBy, str] = {GroupBy.NODE: "n.node_id", GroupBy.MODEL: "n.model"}


class Bucket(StrEnum):
    AUTO = "auto"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Step:
    """A bucket width: its name in results, its DuckDB interval, and its length for counting."""

    name: str
    interval: str
    approx: timedelta


_MONTH = Step("month", "1 month", timedelta(days=30.436875))
_STEPS: dict[Bucket, Step] = {
    Bucket.HOUR: Step("hour", "1 hour", timedelta(hours=1)),
    Bucket.DAY: Step("day", "1 day", timedelta(days=1)),
    Bucket.WEEK: Step("week", "7 days", timedelta(days=7)),
    Bucket.MONTH: _MONTH,
}
# auto picks from a finer ladder, so a 1-day range gets 15-minute buckets rather than 24 hours
_LADDER: tuple[Step, ...] = (
    Step("minute", "1 minute", timedelta(minutes=1)),
    Step("5 minutes", "5 minutes", timedelta(minutes=5)),
    Step("15 minutes", "15 minutes", timedelta(minutes=15)),
    _STEPS[Bucket.HOUR],
    Step("6 hours", "6 hours", timedelta(hours=6)),
    _STEPS[Bucket.DAY],
    _STEPS[Bucket.WEEK],
    _MONTH,
)
# time_bucket's default origins: 2000-01-03 (a Monday, so weeks are ISO weeks) and, for months, 2000-01-01
_ORIGIN = datetime(2000, 1, 3)


def _floor(step: Step, t: datetime) -> datetime:
    if step is _MONTH:
        return datetime(t.year, t.month, 1)
    return _ORIGIN + ((t - _ORIGIN) // step.approx) * step.approx


def _next(step: Step, t: datetime) -> datetime:
    if step is _MONTH:
        return datetime(t.year + t.month // 12, t.month % 12 + 1, 1)
    return t + step.approx


_CALENDAR = frozenset({"day", "week", "month"})


def _local(t: datetime, zone: ZoneInfo) -> datetime:
    return t.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as naive UTC; a midnight that does not exist (a DST jump at 00:00)
    resolves, as zoneinfo does with fold=0, to the first instant of that day."""
    return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def zoned(step: Step, zone: ZoneInfo | None) -> ZoneInfo | None:
    """The zone a step is aligned to: calendar steps only, and only for a zone other than UTC."""
    return zone if zone is not None and step.name in _CALENDAR and zone.key != "UTC" else None


def bucket_starts(
    step: Step, start: datetime, end: datetime, limit: int = MAX_BUCKETS, zone: ZoneInfo | None = None
) -> list[datetime]:
    """Starts (naive UTC) of the aligned buckets covering [start, end); at most `limit` + 1."""
    zone = zoned(step, zone)
    if zone is None:
        out = [_floor(step, start)]
        while len(out) <= limit and (t := _next(step, out[-1])) < end:
            out.append(t)
        return out
    local = [_floor(step, _local(start, zone))]
    while len(local) <= limit and _utc(t := _next(step, local[-1]), zone) < end:
        local.append(t)
    return [_utc(t, zone) for t in local]


def bucket_of(step: Step, starts: list[datetime], zone: ZoneInfo | None) -> Callable[[datetime], datetime]:
    """The start of the bucket holding a time in the range (`starts` from `bucket_starts`)."""
    if zoned(step, zone) is None:
        return lambda t: _floor(step, t)
    return lambda t: starts[bisect_right(starts, t) - 1]


def _count(step: Step, start: datetime, end: datetime) -> int:
    first = _floor(step, start)
    if step is _MONTH:
        partial = end > datetime(end.year, end.month, 1)
        return (end.year - first.year) * 12 + end.month - first.month + partial
    return -((first - end) // step.approx)


def auto_step(start: datetime, end: datetime) -> Step:
    """The ladder step whose bucket count is nearest AUTO_TARGET (on a log scale)."""
    return min(_LADDER, key=lambda s: abs(math.log(_count(s, start, end) / AUTO_TARGET)))


class MetricsQuery(BaseModel):
    """What to measure, over which range, bucketed how, split by what, on which runs."""

    model_config = ConfigDict(extra="forbid")

    measures: list[Measure] = Field(min_length=1, max_length=len(Measure))
    start: UtcTime = Field(description="inclusive; ISO 8601 or epoch seconds, UTC when no offset")
    end: UtcTime = Field(description="exclusive; later than start")
    bucket: Bucket = Field(default=Bucket.AUTO, validate_default=True)
    group_by: GroupBy | None = None
    filter: ExecutionFilter | None = None
    max_groups: Count = Field(default=20, ge=1, le=100, description="the groups with most runs")
    previous: bool = Field(default=True, description="also the same-length range before start")
    tz: str = Field(
        default="UTC",
        max_length=64,
        description="IANA zone whose local midnights start day, week and month buckets",
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        if v not in _zone_names():
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Europe/Berlin")
        return v

    def zone(self) -> ZoneInfo | None:
        """The zone buckets of this query's step are aligned to; None for the UTC grid."""
        return zoned(self.step(), ZoneInfo(self.tz))

    @field_validator("measures")
    @classmethod
    def _unique(cls, v: list[Measure]) -> list[Measure]:
        return list(dict.fromkeys(v))

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, v: datetime) -> datetime:
        v = naive_utc(v)
        if not _EARLIEST <= v <= _LATEST:
            raise ValueError("must be between 1970-01-01 and 2200-01-01")
        return v

    @field_validator("bucket")
    @classmethod
    def _few_enough(cls, v: Bucket, info: ValidationInfo) -> Bucket:
        start, end = info.data.get("start"), info.data.get("end")
        if start is None or end is None or end <= start:  # the wrong order: `metrics` says so
            return v
        step = auto_step(start, end) if v is Bucket.AUTO else _STEPS[v]
        if _count(step, start, end) > MAX_BUCKETS:
            # month is the widest bucket: past it only a shorter range helps
            wider = "use a wider bucket or a shorter range" if step.name != "month" else "use a shorter range"
            raise ValueError(f"more than {MAX_BUCKETS} {step.name} buckets from start to end; {wider}")
        return v

    def step(self) -> Step:
        return auto_step(self.start, self.end) if self.bucket is Bucket.AUTO else _STEPS[self.bucket]


@dataclass(frozen=True, slots=True)
class MetricsResult:
    """`rows`: bucket (timestamp, UTC), group (when grouped), one column per measure.
    `totals`: group (when grouped), then per measure `m`, `m_previous`, `m_change` (absolute)
    and `m_change_rel` (relative, null when the previous value is 0 or not asked for)."""

    rows: pa.Table
    totals: pa.Table
    measures: tuple[Measure, ...]
    bucket: str
    start: datetime
    end: datetime
    previous_start: datetime | None
    group_by: GroupBy | None
    tz: str
    percentiles_approximate: bool
    tokens_estimated: bool
    groups_truncated: bool


def _source(query: MetricsQuery, visible: Clause) -> tuple[str, list[Any]]:
    """The base relation: one row per run, or per node run for node and model groups.

    Filters and visibility always apply to the run (its status, user, flow, time...): a
    node-level row exists only for a node of a run the caller may see and the filter keeps.
    """
    cond, params = where(visible, *(query.filter.clauses() if query.filter else []))
    group = query.group_by
    if group in _NODE_GROUPS:
        label = _NODE_GROUPS[group]
        inner = (
            "SELECT created_at, unnest(nodes) AS n FROM executions"
            f" WHERE created_at >= ? AND created_at < ? AND ({cond})"
        )
        select = (
            f"SELECT created_at, {label} AS grp, n.status AS status, n.duration_ms AS duration,"
            " n.tokens_in AS tokens_in, n.tokens_out AS tokens_out, n.cost AS cost,"
            f" n.tokens_estimated AS tokens_estimated FROM ({inner})"
        )
        if group is GroupBy.MODEL:
            select += " WHERE n.model IS NOT NULL"
        return select, params
    label = _RUN_GROUPS[group] if group is not None else "NULL::VARCHAR"
    select = (
        f"SELECT created_at, {label} AS grp, status, execution_time AS duration, tokens_in, tokens_out,"
        " cost, tokens_estimated FROM executions"
        f" WHERE created_at >= ? AND created_at < ? AND ({cond})"
    )
    return select, params


def _aggregates(measures: tuple[Measure, ...]) -> str:
    """Aggregate expressions; percentiles come out together in `_q` (see `_pick`)."""
    plain = [f"{_MEASURES[m]} AS {m.value}" for m in measures if m in _MEASURES]
    fractions = [_QUANTILES[m] for m in measures if m in _QUANTILES]
    if fractions:
        plain.append(f"quantile_cont(duration, [{', '.join(fractions)}]) AS _q")
    return ", ".join(plain)


def _pick(measures: tuple[Measure, ...], keys: str, source: str) -> str:
    """The keys, then each measure as a column, percentiles taken out of `_q` (null if none)."""
    quantiles = [m for m in measures if m in _QUANTILES]
    cols = [f"_q[{quantiles.index(m) + 1}] AS {m.value}" if m in _QUANTILES else m.value for m in measures]
    return f"SELECT {keys}, {', '.join(cols)} FROM ({source})"


def _zero(m: Measure) -> int | float | None:
    """A measure's value over no runs."""
    return None if m in NULLABLE else 0 if m in _INTEGER else 0.0


Cells = dict[tuple[Any, ...], dict[str, Any]]


def _scan(
    conn: Connection, query: MetricsQuery, visible: Clause, step: Step, prev_start: datetime | None
) -> tuple[Cells, Cells]:
    """One scan of both periods: totals per (group, period) and aggregates per (group, bucket)
    of the current period, with GROUPING SETS (percentiles do not add up, so totals cannot be
    summed from buckets). Two separate queries cost twice the scan; for a small flow the scan
    of every flow's runs in the range is most of a trend's time."""
    source, params = _source(query, visible)
    measures = tuple(query.measures)
    zone = query.zone()
    if zone is None:
        keyed = f"SELECT *, created_at >= ? AS cur, time_bucket(?::INTERVAL, created_at) AS bucket FROM ({source})"
        head: list[Any] = [query.start, step.interval]
        tail: list[Any] = []
    else:  # local midnights: each run takes the last bucket start at or before it
        keyed = (
            f"SELECT s.*, s.created_at >= ? AS cur, b.bucket FROM ({source}) s"
            " ASOF LEFT JOIN (SELECT unnest(?::TIMESTAMP[]) AS bucket) b ON s.created_at >= b.bucket"
        )
        head, tail = [query.start], [bucket_starts(step, query.start, query.end, zone=zone)]
    grouped = (
        "SELECT grp, cur, bucket, grouping(bucket) AS _total, count(*) AS _n,"
        f" bool_or(tokens_estimated) AS _est, {_aggregates(measures)}"
        f" FROM ({keyed}) GROUP BY GROUPING SETS ((grp, cur), (grp, cur, bucket))"
    )
    found = conn.sql(
        _pick(measures, "grp, cur, bucket, _total, _n, _est", grouped),
        params=[*head, prev_start or query.start, query.end, *params, *tail],
    ).to_arrow_table()
    return _file_cells(found.to_pylist())


def _file_cells(rows: list[dict[str, Any]]) -> tuple[Cells, Cells]:
    """Rows keyed (grp, cur, bucket, _total): totals per (group, period), and the current
    period's buckets per (bucket, group)."""
    totals: Cells = {}
    buckets: Cells = {}
    for r in rows:
        if r["_total"]:
            totals[(r["grp"], r["cur"])] = r
        elif r["cur"]:
            buckets[(r["bucket"], r["grp"])] = r
    return totals, buckets


# Below this many runs in the flows asked for, a trend fetches the rows (through the flow_id
# index) and aggregates them here: the grouped scan's fixed cost (~5-7 ms, mostly DuckDB's
# quantile and GROUPING SETS machinery) is then most of a small flow's trend; the fetch is ~1 ms.
SMALL_SCOPE_RUNS = 5_000


def _quantile_cont(ordered: list[int], q: float) -> float:
    """DuckDB's quantile_cont: linear interpolation between the two nearest ranks."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _measure_cell(
    measures: tuple[Measure, ...],
    *,
    n: int,
    estimated: bool,
    counts: dict[str, int],
    duration_sum: float,
    timed: int,
    tokens_in: int,
    tokens_out: int,
    cost: float | None,
    quantile: Callable[[Measure], float | None],
) -> dict[str, Any]:
    """One cell of `_aggregates`' measures from its sums: what the fetched rows and the rollups
    both come down to (`timed`: how many durations `duration_sum` adds up)."""
    out: dict[str, Any] = {"_n": n, "_est": estimated}
    for m in measures:
        if m is Measure.RUNS:
            out[m.value] = n
        elif m in (Measure.SUCCESS, Measure.ERROR, Measure.ABORTED):
            out[m.value] = counts.get(m.value, 0)
        elif m is Measure.FAILURE_RATE:
            out[m.value] = counts.get("error", 0) / n
        elif m is Measure.AVG_DURATION:
            out[m.value] = duration_sum / timed if timed else None
        elif m in _QUANTILES:
            out[m.value] = quantile(m)
        elif m is Measure.TOKENS_IN:
            out[m.value] = capped(tokens_in)
        elif m is Measure.TOKENS_OUT:
            out[m.value] = capped(tokens_out)
        elif m is Measure.COST:
            out[m.value] = cost
    return out


def _cell(rows: list[tuple[Any, ...]], measures: tuple[Measure, ...]) -> dict[str, Any]:
    """The aggregates of `_aggregates`, in Python, over rows of `_source` (one group, one key)."""
    statuses = [r[2] for r in rows]
    durations = sorted(r[3] for r in rows if r[3] is not None)
    return _measure_cell(
        measures,
        n=len(rows),
        estimated=any(r[7] for r in rows),
        counts={s: statuses.count(s) for s in ("success", "error", "aborted")},
        duration_sum=sum(durations),
        timed=len(durations),
        tokens_in=sum(r[4] for r in rows if r[4] is not None),
        tokens_out=sum(r[5] for r in rows if r[5] is not None),
        cost=math.fsum(known) if (known := [r[6] for r in rows if r[6] is not None]) else None,
        quantile=lambda m: _quantile_cont(durations, float(_QUANTILES[m])) if durations else None,
    )


def _fetch_and_aggregate(
    conn: Connection, query: MetricsQuery, visible: Clause, step: Step, prev_start: datetime | None
) -> tuple[Cells, Cells]:
    """What `_scan` answers, from the rows themselves: for scopes of few runs."""
    source, params = _source(query, visible)
    rows = conn.execute(source, [prev_start or query.start, query.end, *params]).fetchall()
    start = naive_utc(query.start)
    zone = query.zone()
    floor = bucket_of(step, bucket_starts(step, query.start, query.end, zone=zone), zone)
    by_total: dict[tuple[Any, bool], list[tuple[Any, ...]]] = {}
    by_bucket: dict[tuple[Any, Any], list[tuple[Any, ...]]] = {}
    for r in rows:
        cur = r[0] >= start
        by_total.setdefault((r[1], cur), []).append(r)
        if cur:
            by_bucket.setdefault((floor(r[0]), r[1]), []).append(r)
    measures = tuple(query.measures)
    totals = {k: _cell(v, measures) for k, v in by_total.items()}
    buckets = {k: _cell(v, measures) for k, v in by_bucket.items()}
    return totals, buckets


def _is_small(ctx: Context, query: MetricsQuery) -> bool:
    """Run-level, over named flows whose runs (all time, all users) are few."""
    if query.group_by in _NODE_GROUPS or query.filter is None or query.filter.flow_id is None:
        return False
    flow_ids = query.filter.flow_id.any_
    return sum(ctx.counters.stats(f).total_executions for f in flow_ids) <= SMALL_SCOPE_RUNS


# In a store of more than this many rolled-up runs, a trend by day, week or month over whole
# days reads the daily rollups (analytics/trends/rollups.py): exact counts and sums, percentiles
# within ~2 %. The store's size, not the flow's, decides: past it, a small flow's runs are
# scattered over the whole table too, and fetching them one by one through the flow_id index
# (2k runs of 10M: ~20 ms) costs more than reading its rollups (~300 rows).
ROLLUP_MIN_RUNS = 200_000
_ROLLUP_GROUPS = {
    None: None,
    GroupBy.FLOW: "flow",
    GroupBy.STATUS: "status",
    GroupBy.FLOW_VERSION: "flow_version",
}
_ROLLUP_STEPS = {"day", "week", "month"}


@dataclass(frozen=True, slots=True)
class RollupScope:
    flow_ids: list[str] | None  # None: every flow (an admin's query)
    statuses: list[str] | None


def _rollup_scope(ctx: Context, viewer: Viewer, query: MetricsQuery) -> RollupScope | None:
    """When rollups can answer: a big store, whole days, day-or-longer buckets, run-level
    groups the rollup keeps, no filter but flow and status, and a caller who sees every run of
    those flows."""
    rolled = ctx.rollup_state
    if query.zone() is not None:  # rollups are per UTC day
        return None
    if rolled.until is None or rolled.runs < ROLLUP_MIN_RUNS or query.group_by not in _ROLLUP_GROUPS:
        return None
    if query.step().name not in _ROLLUP_STEPS or query.start.time() != time() or query.end.time() != time():
        return None
    f = query.filter
    if f is not None and set(f.model_dump(exclude_none=True)) - {"flow_id", "status"}:
        return None
    if f is not None and f.flow_id is not None:
        wanted = list(f.flow_id.any_)
        for fid in wanted:
            try:
                if require_flow_access(ctx.directory, viewer, fid).only_user is not None:
                    return None
            except FlowHistoryError:
                return None
        flow_ids: list[str] | None = wanted
    elif viewer.is_admin:  # in Open WebUI mode only the flows it has: a gone flow's runs count as deleted
        flow_ids = [f.id for f in ctx.directory.flows()] if ctx.directory.external else None
    else:
        return None
    return RollupScope(flow_ids, list(f.status.any_) if f is not None and f.status is not None else None)


def _rollup_cells(
    conn: Connection, query: MetricsQuery, step: Step, prev_start: datetime | None, scope: RollupScope
) -> tuple[Cells, Cells] | None:
    """`_scan`'s answer from the rollups, or None when too many days are dirty to be worth it."""
    until = changes.rolled_until(conn)
    lo = prev_start or query.start
    if until is None:
        return None
    # only the dirty pairs inside the range's rolled days: one after `end` changes nothing here
    dirty = rollups.dirty_pairs(conn, scope.flow_ids, lo.date(), min(until, query.end.date()))
    if len(dirty) > rollups.MAX_DIRTY_PAIRS:
        return None
    quantiled = [m for m in query.measures if m in _QUANTILES]
    rows = rollups.read_cells(
        conn,
        group=_ROLLUP_GROUPS[query.group_by],
        flow_ids=scope.flow_ids,
        statuses=scope.statuses,
        lo=lo,
        start=query.start,
        end=query.end,
        until=until,
        dirty=dirty,
        bucket_of=lambda d: _floor(step, datetime(d.year, d.month, d.day)),
        quantiles=[float(_QUANTILES[m]) for m in quantiled],
    )
    measures = tuple(query.measures)
    for r in rows:
        r.update(
            _measure_cell(
                measures,
                n=r["_n"],
                estimated=r["_est"],
                counts=r,
                duration_sum=r["duration_sum"],
                timed=r["_n"],
                tokens_in=r["tokens_in"],
                tokens_out=r["tokens_out"],
                cost=r["cost"],
                quantile=partial(_nth_quantile, r["quantiles"], quantiled),
            )
        )
    return _file_cells(rows)


def _nth_quantile(values: list[float], quantiled: list[Measure], m: Measure) -> float:
    """A rollup row's percentile `m`: its lists are in the order of the measures asked for."""
    return values[quantiled.index(m)]


def _kept_groups(totals: Cells, query: MetricsQuery) -> tuple[list[str | None], bool]:
    """The groups with most runs in the current period, busiest first (ties by label)."""
    if query.group_by is None:
        return [None], False
    ranked = sorted(
        ((g, r["_n"]) for (g, cur), r in totals.items() if cur),
        key=lambda x: (-x[1], x[0] is None, x[0] or ""),
    )
    return [g for g, _ in ranked[: query.max_groups]], len(ranked) > query.max_groups


def _grid(buckets: Cells, query: MetricsQuery, step: Step, groups: list[str | None]) -> pa.Table:
    """One row per (bucket, kept group) in [start, end), `_zero` where no run; the dense grid is
    filled here rather than by a join against generated buckets in SQL (~3x the cost)."""
    keys = [(b, g) for b in bucket_starts(step, query.start, query.end, zone=query.zone()) for g in groups]
    columns: dict[str, pa.Array[Any]] = {"bucket": pa.array([b for b, _ in keys], pa.timestamp("us"))}
    if query.group_by is not None:
        columns["group"] = pa.array([g for _, g in keys], pa.string())
    for m in query.measures:
        zero = _zero(m)
        columns[m.value] = pa.array([buckets[k][m.value] if k in buckets else zero for k in keys], _type(m))
    return pa.table(columns)


def _run(
    conn: Connection, query: MetricsQuery, visible: Clause, step: Step, small: bool, big: RollupScope | None
) -> MetricsResult:
    prev_start = query.start - (query.end - query.start) if query.previous else None
    rolled = _rollup_cells(conn, query, step, prev_start, big) if big is not None else None
    if rolled is not None:
        totals, buckets = rolled
    else:
        aggregate = _fetch_and_aggregate if small else _scan
        totals, buckets = aggregate(conn, query, visible, step, prev_start)
    groups, truncated = _kept_groups(totals, query)
    rows = _grid(buckets, query, step, groups) if groups else _empty_rows(query)
    return MetricsResult(
        rows=rows,
        totals=_with_changes(totals, groups, query),
        measures=tuple(query.measures),
        bucket=step.name,
        start=query.start,
        end=query.end,
        previous_start=prev_start,
        group_by=query.group_by,
        tz=query.tz,
        # only a percentile is approximate from rollups: counts and sums are exact either way
        percentiles_approximate=rolled is not None and any(m in _PERCENTILES for m in query.measures),
        tokens_estimated=any(bool(totals[(g, True)]["_est"]) for g in groups if (g, True) in totals),
        groups_truncated=truncated,
    )


def _type(m: Measure) -> pa.DataType:
    return pa.int64() if m in _INTEGER else pa.float64()


def _empty_rows(query: MetricsQuery) -> pa.Table:
    """Grouped, with no group having runs in the range: no (bucket, group) pairs at all."""
    fields = [("bucket", pa.timestamp("us")), ("group", pa.string())]
    return pa.table({n: pa.array([], t) for n, t in fields + [(m.value, _type(m)) for m in query.measures]})


def _with_changes(
    cells: dict[tuple[str | None, bool], dict[str, Any]], groups: list[str | None], query: MetricsQuery
) -> pa.Table:
    """Per group and measure: value, previous, change and relative change (null when the
    previous value is 0 or null, when the value is null, or when the previous period was not
    asked for)."""
    cols: dict[str, pa.Array[Any]] = {}
    if query.group_by is not None:
        cols["group"] = pa.array(groups, pa.string())
    for m in query.measures:
        cur = [cells[(g, True)][m.value] if (g, True) in cells else _zero(m) for g in groups]
        if query.previous:
            prev: list[Any] = [
                cells[(g, False)][m.value] if (g, False) in cells else _zero(m) for g in groups
            ]
        else:
            prev = [None] * len(groups)
        changes = [None if p is None or c is None else c - p for c, p in zip(cur, prev, strict=True)]
        cols[m.value] = pa.array(cur, _type(m))
        cols[f"{m.value}_previous"] = pa.array(prev, _type(m))
        cols[f"{m.value}_change"] = pa.array(changes, _type(m))
        cols[f"{m.value}_change_rel"] = pa.array(
            [None if not p or c is None else (c - p) / p for c, p in zip(cur, prev, strict=True)],
            pa.float64(),
        )
    return pa.table(cols)


def metrics(ctx: Context, viewer: Viewer, query: MetricsQuery) -> MetricsResult:
    """Measures per bucket (and group) over the runs this caller may see, with totals for the
    range and the one before it.

    At run level (no group, or flow, flow_version, status, user) a row is a run: durations are
    `execution_time`, tokens and cost the run's totals. Grouped by node or model a row is a node
    run: `runs` counts node runs (a model used by two nodes of one run counts twice), success,
    error and aborted are the node's own status (nodes may also be skipped or running, which
    count only in runs), durations are the node's `duration_ms` where it reported one, tokens
    and cost the node's. Model groups leave out nodes without a model. Filters always select
    runs, at both levels. Tokens include estimates where usage was absent: `tokens_estimated`.
    """
    check_range(query.start, query.end)
    visible = visible_clause(ctx.directory, viewer)
    big = _rollup_scope(ctx, viewer, query)
    small = _is_small(ctx, query)

    def run(c: Connection) -> MetricsResult:
        ready = query
        if query.filter is not None and query.filter.error_signature is not None:
            ready = query.model_copy(update={"filter": query.filter.resolved(c, visible)})
        return _run(c, ready, visible, query.step(), small, big)

    # rollups, their dirty list and the live rows must describe one moment
    return ctx.store.read(in_snapshot(run) if big is not None else run)


def flow_trend(ctx: Context, viewer: Viewer, flow_id: str, query: MetricsQuery) -> MetricsResult:
    """One flow's metrics; the flow is checked first (NotFound, then AccessDenied), and the
    query's own filter, if any, is narrowed to this flow."""
    require_flow_access(ctx.directory, viewer, flow_id)
    narrowed = (query.filter or ExecutionFilter()).model_copy(update={"flow_id": AnyOf(any_=[flow_id])})
    return metrics(ctx, viewer, query.model_copy(update={"filter": narrowed}))
