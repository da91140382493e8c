"""Daily rollups that let a trend over millions of runs read thousands of rows.

Per (flow, UTC day, status, flow version) the rollup keeps exact counts and sums (runs,
duration, tokens, cost) and a histogram of run durations in logarithmic bins (each bin is
GAMMA times wider than the one before, as in DDSketch). A percentile is read like DuckDB's
`quantile_cont` (interpolated between the two nearest ranks), each rank's duration taken
from its bin, so it is within `RELATIVE_ERROR` of the exact one. Trends say so:
`percentiles_approximate` is true when rollups answered a percentile.

Freshness and correctness: days before `rolled_until` are rolled up, later days (today, and
any day not yet rolled) are read from `executions` and binned on the fly. A write that changes
runs of an already rolled day (a delete, a late import, a re-price, retention) marks that
(flow, day) dirty in the same transaction, and a dirty pair is read from `executions` until
the refresh job rebuilds it. The refresh job also compares every rolled day's count and sums
with `executions` and rebuilds any that disagree: a safety net for a write path that forgot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.core.clock import utc_now
from analytics.core.saturating import CAP, capped_sum
from analytics.core.store import Connection, one_row
from analytics.history.changes import mark_dirty, rolled_until

if TYPE_CHECKING:
    from analytics.core.context import Context

GAMMA = 1.04
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)  # ~2 %
_LN_GAMMA = math.log(GAMMA)
# bin 0 holds 0 ms; bin k >= 1 holds (GAMMA^(k-2), GAMMA^(k-1)]
BIN_SQL = (
    f"CASE WHEN execution_time <= 0 THEN 0 ELSE 1 + ceil(ln(execution_time) / {_LN_GAMMA!r}) END::SMALLINT"
)
CHUNK_DAYS = 31  # days rolled per writer transaction, so ingest never waits long

# a cell's sums over its runs, then over cells: capped (analytics/core/saturating.py), so a day of
# absurd reports is rolled up instead of failing the refresh job on every pass
_SUMS_OF_RUNS = (
    f"{capped_sum('execution_time')} AS duration_sum, coalesce({capped_sum('tokens_in')}, 0) AS tokens_in,"
    f" coalesce({capped_sum('tokens_out')}, 0) AS tokens_out"
)
_SUMS_OF_CELLS = ", ".join(capped_sum(c) for c in ("duration_sum", "tokens_in", "tokens_out"))


def _day(ts: datetime) -> date:
    return ts.date()


def _build(conn: Connection, where: str, params: list[Any]) -> None:
    """Roll up the runs matching `where` (whole (flow, day) pairs only)."""
    conn.execute(
        "INSERT INTO trend_rollups SELECT flow_id, day, status, flow_version, sum(n)::BIGINT,"
        f" {_SUMS_OF_CELLS}, fsum(cost), bool_or(estimated), list(bin ORDER BY bin), list(n ORDER BY bin)"
        " FROM (SELECT flow_id, CAST(created_at AS DATE) AS day, status, flow_version,"
        f" {BIN_SQL} AS bin, count(*) AS n, {_SUMS_OF_RUNS},"
        " fsum(cost) AS cost, bool_or(tokens_estimated) AS estimated"
        f" FROM executions WHERE {where} GROUP BY ALL)"
        # a flow's rows together: its trend reads a few runs of the column, not every flow's
        " GROUP BY flow_id, day, status, flow_version ORDER BY flow_id, day",
        params,
    )


def _repair(conn: Connection) -> int:
    """Rebuild every dirty pair from `executions`; returns how many pairs."""
    pairs = conn.execute("SELECT flow_id, day FROM rollup_dirty").fetchall()
    if not pairs:
        return 0
    in_dirty = "EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.flow_id = {t}.flow_id AND d.day = {day})"
    conn.execute(
        f"DELETE FROM trend_rollups WHERE {in_dirty.format(t='trend_rollups', day='trend_rollups.day')}"
    )
    lo, hi = min(d for _, d in pairs), max(d for _, d in pairs) + timedelta(days=1)
    where = f"created_at >= ? AND created_at < ? AND {in_dirty.format(t='executions', day='CAST(executions.created_at AS DATE)')}"
    _build(conn, where, [lo, hi])
    conn.execute("DELETE FROM rollup_dirty")
    return len(pairs)


def _extend(conn: Connection, start: date, end: date) -> None:
    _build(conn, "created_at >= ? AND created_at < ?", [start, end])
    conn.execute(
        "INSERT INTO rollup_state VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET rolled_until = excluded.rolled_until",
        [end],
    )


_DISAGREE = f"""
SELECT coalesce(e.flow_id, r.flow_id), coalesce(e.day, r.day) FROM
  (SELECT flow_id, CAST(created_at AS DATE) AS day, count(*) AS n, sum(execution_time) AS t
   FROM executions WHERE created_at < ? GROUP BY ALL) e
FULL JOIN
  (SELECT flow_id, day, sum(runs) AS n, sum(duration_sum) AS t FROM trend_rollups GROUP BY ALL) r
ON e.flow_id = r.flow_id AND e.day = r.day
WHERE e.n IS DISTINCT FROM r.n OR least(e.t, {CAP}) IS DISTINCT FROM least(r.t, {CAP})
"""  # a cell's sum stops at CAP: a day past it agrees once capped on both sides


def _first_run_from(day: date, conn: Connection) -> datetime | None:
    row = one_row(conn.execute("SELECT min(created_at) FROM executions WHERE created_at >= ?", [day]))
    return row[0] if row else None


def refresh(ctx: Context, today: date | None = None) -> dict[str, Any]:
    """The scheduled job: rebuild dirty pairs, roll every complete day up to `today`, then
    check rolled days against `executions` and rebuild those that disagree."""
    today = today or utc_now().date()
    store = ctx.store
    repaired = store.write(_repair)
    until = store.read(rolled_until)
    if until is None:
        first = store.read(lambda c: c.execute("SELECT min(created_at) FROM executions").fetchall())[0][0]
        until = _day(first) if first is not None else today
    rolled_days = 0
    while until < today:
        step_end = min(today, until + timedelta(days=CHUNK_DAYS))
        # a span without runs is rolled in one step: one backfilled run of year 1 made this
        # loop walk 740,000 empty days, 31 at a time (minutes)
        if (later := store.read(partial(_first_run_from, until))) is None or _day(later) >= step_end:
            step_end = today if later is None else max(step_end, min(today, _day(later)))
        store.write(partial(_extend, start=until, end=step_end), after_commit=partial(_set, ctx, step_end))
        rolled_days += (step_end - until).days
        until = step_end
    if store.read(rolled_until) is None:  # an empty store: nothing to roll, start from today
        store.write(lambda c: _extend(c, today, today), after_commit=lambda _: _set(ctx, today))
    disagree = store.read(lambda c: c.execute(_DISAGREE, [until]).fetchall())
    if disagree:

        def repair_disagreeing(c: Connection) -> None:
            mark_dirty(c, disagree)
            _repair(c)

        store.write(repair_disagreeing)
    load(ctx)
    return {
        "rolled_until": until.isoformat(),
        "days_rolled": rolled_days,
        "dirty_rebuilt": repaired,
        "disagreeing_rebuilt": len(disagree),
    }


def _set(ctx: Context, until: date, _committed: object = None) -> None:
    ctx.rollup_state.until = until


def load(ctx: Context) -> None:
    """At open and after a refresh: the rolled-until date and the rolled run count."""
    ctx.store.read(ctx.rollup_state.load)


# -- reading: what trends ask -------------------------------------------------------------

_GROUP_COLUMN = {None: "NULL::VARCHAR", "flow": "flow_id", "status": "status", "flow_version": "flow_version"}
INLINE_FLOWS = 64  # up to this many flows are an IN list (the usual trend: one flow)
MAX_DIRTY_PAIRS = 64  # more dirty pairs in a scope than this: the caller scans instead


def _scope_sql(flow_ids: list[str] | None, statuses: list[str] | None) -> tuple[str, list[Any]]:
    parts: list[str] = ["TRUE"]
    params: list[Any] = []
    if flow_ids is not None and len(flow_ids) <= INLINE_FLOWS:  # inline: row groups are pruned by flow
        parts.append(f"flow_id IN ({', '.join('?' * len(flow_ids))})" if flow_ids else "FALSE")
        params += flow_ids
    elif flow_ids is not None:  # one list parameter: in Open WebUI mode an admin's scope is every live flow
        parts.append("list_contains(?::VARCHAR[], flow_id)")
        params.append(flow_ids)
    if statuses is not None:
        parts.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += statuses
    return " AND ".join(parts), params


def dirty_pairs(conn: Connection, flow_ids: list[str] | None, lo: date, hi: date) -> list[tuple[str, date]]:
    scope, params = _scope_sql(flow_ids, None)
    return conn.execute(
        f"SELECT flow_id, day FROM rollup_dirty WHERE day >= ? AND day < ? AND {scope}", [lo, hi, *params]
    ).fetchall()


def read_cells(
    conn: Connection,
    *,
    group: str | None,
    flow_ids: list[str] | None,
    statuses: list[str] | None,
    lo: datetime,
    start: datetime,
    end: datetime,
    until: date,
    dirty: list[tuple[str, date]],
    bucket_of: Callable[[date], datetime],
    quantiles: list[float],
) -> list[dict[str, Any]]:
    """Per (grp, cur) (`_total` 1) and per (grp, cur, bucket) of the current period: run
    counts by status, sums, and `quantiles` of the duration, over the days [lo, end), `cur`
    meaning on or after `start` (all three UTC midnights). Rolled days before `end` come from
    the rollups; the rest (days after `until`, dirty pairs) from `executions`, grouped into
    the same row shape by SQL. One simple statement fetches a few hundred rows; the
    histograms are merged here with numpy (a GROUPING SETS query over unnested bins cost
    ~10x more in DuckDB's fixed costs)."""
    if any(t.time() != time() for t in (lo, start, end)):
        raise ValueError("rollups answer whole UTC days only")
    grp = _GROUP_COLUMN[group]
    scope, scope_params = _scope_sql(flow_ids, statuses)
    # rolled days are read up to `until` or the range's end, whichever comes first: a range
    # that ends in the past must not count the rolled days after it
    rolled_end = min(until, end.date())
    dirty = [(fid, day) for fid, day in dirty if lo.date() <= day < rolled_end]
    until_ts = datetime(until.year, until.month, until.day)
    # the live part: the days after `until`, and each dirty (flow, day), as separate windows
    # with plain time bounds (so zone maps skip the rest of the table), the flows matched
    # with list_contains rather than IN (so DuckDB scans the window instead of fetching every
    # run of the flow through the flow_id index)
    windows: list[tuple[str | None, datetime, datetime]] = []
    if max(lo, until_ts) < end:
        windows.append((None, max(lo, until_ts), end))
    for dirty_flow, day in dirty:
        d = datetime(day.year, day.month, day.day)
        windows.append((dirty_flow, d, d + timedelta(days=1)))
    flows_clause = "TRUE" if flow_ids is None else "list_contains(?::VARCHAR[], flow_id)"
    flows_params = [] if flow_ids is None else [flow_ids]
    status_clause = "TRUE" if statuses is None else "list_contains(?::VARCHAR[], status)"
    status_params = [] if statuses is None else [statuses]
    selects: list[str] = []
    params: list[Any] = []
    for fid, a, b in windows:
        one = "TRUE" if fid is None else "list_contains(?::VARCHAR[], flow_id)"
        selects.append(
            f"SELECT day, grp, status, sum(n)::BIGINT, {_SUMS_OF_CELLS}, fsum(cost), bool_or(estimated),"
            " list(bin ORDER BY bin), list(n ORDER BY bin)"
            f" FROM (SELECT CAST(created_at AS DATE) AS day, {grp} AS grp, status, {BIN_SQL} AS bin,"
            f" count(*) AS n, {_SUMS_OF_RUNS}, fsum(cost) AS cost,"
            " bool_or(tokens_estimated) AS estimated FROM executions"
            f" WHERE created_at >= ? AND created_at < ? AND {flows_clause} AND {status_clause} AND {one}"
            " GROUP BY ALL) GROUP BY day, grp, status"
        )
        params += [a, b, *flows_params, *status_params, *([] if fid is None else [[fid]])]
    # the dirty pairs were read in this snapshot: leave them out by value, no anti-join
    not_dirty = "".join(" AND NOT (flow_id = ? AND day = ?)" for _ in dirty)
    rolled = (
        f"SELECT day, {grp} AS grp, status, runs, duration_sum, tokens_in, tokens_out, cost, estimated,"
        f" bins, counts FROM trend_rollups WHERE day >= ? AND day < ? AND {scope}{not_dirty}"
    )
    sql = " UNION ALL ".join([rolled, *selects])
    dirty_params = [v for pair in dirty for v in pair]
    table = conn.sql(
        sql, params=[lo.date(), rolled_end, *scope_params, *dirty_params, *params]
    ).to_arrow_table()
    return _aggregate(table, start.date(), bucket_of, quantiles)


def _aggregate(
    table: pa.Table, start_day: date, bucket_of: Callable[[date], datetime], quantiles: list[float]
) -> list[dict[str, Any]]:
    """Sum the rows per key and merge their histograms (numpy), then read the quantiles."""
    names = ["day", "grp", "status", "runs", "duration_sum", "tokens_in", "tokens_out", "cost", "estimated"]
    cols = [table.column(i).to_pylist() for i in range(len(names))]
    keys: dict[tuple[Any, ...], int] = {}
    cells: list[dict[str, Any]] = []
    total_of = np.empty(table.num_rows, np.int64)
    bucket_of_row = np.full(table.num_rows, -1, np.int64)
    for i, (day, grp, status, runs, dsum, tin, tout, cost, est) in enumerate(zip(*cols, strict=True)):
        cur = day >= start_day
        for total, bucket in ((1, None), (0, bucket_of(day))):
            if not total and not cur:
                continue  # buckets are shown for the current period only
            key = (grp, cur, bucket, total)
            idx = keys.get(key)
            if idx is None:
                idx = keys[key] = len(cells)
                cells.append(dict(zip(("grp", "cur", "bucket", "_total"), key, strict=True)))
                cells[idx].update(
                    _n=0,
                    _est=False,
                    success=0,
                    error=0,
                    aborted=0,
                    duration_sum=0.0,
                    tokens_in=0,
                    tokens_out=0,
                    cost=None,  # until a row has a known cost (null: none priced)
                )
            c = cells[idx]
            c["_n"] += runs
            c[status] += runs
            c["duration_sum"] += dsum
            c["tokens_in"] += tin
            c["tokens_out"] += tout
            if cost is not None:  # added exactly rounded below, as every cost is (cost/report.py)
                c.setdefault("_costs", []).append(cost)
            c["_est"] = c["_est"] or bool(est)
            if total:
                total_of[i] = idx
            else:
                bucket_of_row[i] = idx
    if not cells:
        return []
    for c in cells:
        costs = c.pop("_costs", None)
        if costs is not None:
            c["cost"] = math.fsum(costs)
    bins_col, counts_col = table.column("bins"), table.column("counts")
    bins = pc.list_flatten(bins_col).to_numpy().astype(np.int64)
    counts = pc.list_flatten(counts_col).to_numpy().astype(np.int64)
    row = np.repeat(np.arange(table.num_rows), pc.list_value_length(bins_col).to_numpy())
    hist = np.zeros((len(cells), int(bins.max(initial=0)) + 1), np.int64)
    np.add.at(hist, (total_of[row], bins), counts)
    in_bucket = bucket_of_row[row] >= 0
    np.add.at(hist, (bucket_of_row[row][in_bucket], bins[in_bucket]), counts[in_bucket])
    cumulative = hist.cumsum(axis=1)
    per_q = [_quantiles(cumulative, q) for q in quantiles]
    for idx, c in enumerate(cells):
        c["quantiles"] = [float(values[idx]) for values in per_q]
    return cells


def _bin_values(b: np.ndarray) -> np.ndarray:
    """The duration each bin stands for: the point of least relative error in its range."""
    return np.where(b == 0, 0.0, 2 * GAMMA ** (b - 1.0) / (GAMMA + 1))


def _quantiles(cumulative: np.ndarray, q: float) -> np.ndarray:
    """quantile_cont (linear interpolation between the two nearest ranks) of every row's
    histogram, each rank's value read from its bin: within RELATIVE_ERROR of the exact one."""
    n = cumulative[:, -1]
    pos = q * (n - 1)
    lo = np.floor(pos)
    hi = np.minimum(lo + 1, n - 1)
    # the bin holding rank r is the first whose cumulative count exceeds r
    b_lo = (cumulative <= lo[:, None]).sum(axis=1)
    b_hi = (cumulative <= hi[:, None]).sum(axis=1)
    v_lo, v_hi = _bin_values(b_lo), _bin_values(b_hi)
    values: np.ndarray = v_lo + (v_hi - v_lo) * (pos - lo)
    return values
