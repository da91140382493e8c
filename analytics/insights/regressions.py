"""Regression between flow versions: each version's numbers and the change from the one before.

Versions are ordered by first seen (ties by version id) among all the runs the caller sees;
each is compared with the previous one in that order over their whole lives, whatever range is
asked: a range only chooses which versions are listed (those whose life, first to last seen,
overlaps it). A chart showing 7 days must not call a version "first" because its predecessor
ran 8 days ago, nor judge it on the runs that happen to fall in the window. Runs stored without
a version are left out (ingest stamps every run, so only very old imports lack one).

`significant` is true when either test flags the change (false for the first version, never
null), `regressed` when a flagged change is for the worse (fails more, or runs slower): the
flows list and overview show these.

A change is flagged `significant` only when both versions have at least `min_runs` runs
(default 30) and the test's two-sided p-value is below `alpha` (default 0.05):

- failure rate (error runs / all runs, aborted runs count in the denominator only):
  **two-proportion z-test** with the pooled proportion, z = (p1 - p0) / sqrt(p(1-p)(1/n0 +
  1/n1)), p = erfc(|z| / sqrt 2). When the pooled p is 0 or 1 the rates are equal: p = 1.
- duration (execution_time): **Mann-Whitney U**, normal approximation with tie correction and
  a 0.5 continuity correction. Mid-ranks and tie counts are computed in DuckDB over both
  samples; z and p in Python. Rank-based, so it tests whether one version tends to be slower,
  robust to the long tail that makes a t-test on durations misleading.

Each adjacent pair is tested on its own at `alpha`, with no correction for the number of
pairs: with many versions, expect about one false flag per 1/alpha comparisons. The normal
approximations are fine at the 30-run minimum; below it nothing is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.core.store import Connection, in_snapshot
from analytics.history.scope import flow_scope, open_scope

DEFAULT_MIN_RUNS = 30
DEFAULT_ALPHA = 0.05

_VERSIONS = """
SELECT
    flow_version,
    count(*) AS runs,
    count(*) FILTER (WHERE status = 'error') AS errors,
    count(*) FILTER (WHERE status = 'error') / count(*) AS failure_rate,
    quantile_cont(execution_time, 0.5) AS p50_ms,
    quantile_cont(execution_time, 0.95) AS p95_ms,
    avg(cost) AS cost_per_run,
    min(created_at) AS first_seen,
    max(created_at) AS last_seen
FROM executions
WHERE {scope} AND flow_version IS NOT NULL
GROUP BY flow_version
ORDER BY first_seen, flow_version
"""

# Pair k compares version k - 1 (side 0) with version k (side 1); every run is in two pairs.
_RANKS = """
WITH versions AS (
    SELECT flow_version,
        row_number() OVER (ORDER BY min(created_at), flow_version) AS k
    FROM executions WHERE {scope} AND flow_version IS NOT NULL
    GROUP BY flow_version
),
samples AS (
    SELECT v.k, s.x
    FROM (
        SELECT flow_version, execution_time::DOUBLE AS x
        FROM executions WHERE {scope} AND flow_version IS NOT NULL
    ) s JOIN versions v USING (flow_version)
),
pairs AS (
    SELECT k AS pair, 1 AS side, x FROM samples
    UNION ALL
    SELECT k + 1 AS pair, 0 AS side, x FROM samples
),
ranked AS (
    SELECT pair, side, x,
        rank() OVER (PARTITION BY pair ORDER BY x)
            + (count(*) OVER (PARTITION BY pair, x) - 1) / 2.0 AS mid_rank
    FROM pairs
),
ties AS (
    SELECT pair, sum(t * t * t - t) AS tie_term
    FROM (SELECT pair, count(*)::DOUBLE AS t FROM pairs GROUP BY pair, x)
    GROUP BY pair
)
SELECT r.pair,
    count(*) FILTER (WHERE side = 0) AS n0,
    count(*) FILTER (WHERE side = 1) AS n1,
    coalesce(sum(mid_rank) FILTER (WHERE side = 1), 0) AS rank_sum_1,
    any_value(t.tie_term) AS tie_term
FROM ranked r JOIN ties t USING (pair)
GROUP BY r.pair
"""


@dataclass(frozen=True, slots=True)
class TestResult:
    statistic: float
    p_value: float


def two_proportion_z(errors0: int, n0: int, errors1: int, n1: int) -> TestResult:
    """Pooled two-proportion z-test, two-sided; z > 0 when the second rate is higher."""
    pooled = (errors0 + errors1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0:
        return TestResult(0.0, 1.0)
    z = (errors1 / n1 - errors0 / n0) / se
    return TestResult(z, math.erfc(abs(z) / math.sqrt(2)))


def mann_whitney(n0: int, n1: int, rank_sum_1: float, tie_term: float) -> TestResult:
    """Mann-Whitney U of sample 1 vs 0 from its rank sum; z > 0 when sample 1 tends higher.

    U1 = R1 - n1(n1+1)/2; mean n0n1/2; variance n0n1/12 * ((n+1) - sum(t^3-t)/(n(n-1))).
    """
    n = n0 + n1
    u1 = rank_sum_1 - n1 * (n1 + 1) / 2
    mean = n0 * n1 / 2
    var = n0 * n1 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return TestResult(0.0, 1.0)
    z = math.copysign(max(abs(u1 - mean) - 0.5, 0.0), u1 - mean) / math.sqrt(var)
    return TestResult(z, math.erfc(abs(z) / math.sqrt(2)))


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _compare(
    prev: dict[str, Any],
    cur: dict[str, Any],
    ranks: tuple[int, int, float, float] | None,
    min_runs: int,
    alpha: float,
) -> dict[str, Any]:
    enough = prev["runs"] >= min_runs and cur["runs"] >= min_runs
    rate = two_proportion_z(prev["errors"], prev["runs"], cur["errors"], cur["runs"])
    duration = mann_whitney(*ranks) if ranks is not None else TestResult(0.0, 1.0)
    return {
        "previous_version": prev["flow_version"],
        "failure_rate_change": cur["failure_rate"] - prev["failure_rate"],
        "p50_change_ms": _diff(prev["p50_ms"], cur["p50_ms"]),
        "p95_change_ms": _diff(prev["p95_ms"], cur["p95_ms"]),
        "cost_per_run_change": _diff(prev["cost_per_run"], cur["cost_per_run"]),
        "enough_runs": enough,
        "failure_rate_z": rate.statistic,
        "failure_rate_p_value": rate.p_value,
        "failure_rate_significant": enough and rate.p_value < alpha,
        "duration_z": duration.statistic,
        "duration_p_value": duration.p_value,
        "duration_significant": enough and duration.p_value < alpha,
    }


_CHANGE_FIELDS = (
    pa.field("previous_version", pa.string()),
    pa.field("failure_rate_change", pa.float64()),
    pa.field("p50_change_ms", pa.float64()),
    pa.field("p95_change_ms", pa.float64()),
    pa.field("cost_per_run_change", pa.float64()),
    pa.field("enough_runs", pa.bool_()),
    pa.field("failure_rate_z", pa.float64()),
    pa.field("failure_rate_p_value", pa.float64()),
    pa.field("failure_rate_significant", pa.bool_()),
    pa.field("duration_z", pa.float64()),
    pa.field("duration_p_value", pa.float64()),
    pa.field("duration_significant", pa.bool_()),
)


_FIRST: dict[str, Any] = dict.fromkeys(f.name for f in _CHANGE_FIELDS)  # nothing before it


def version_regressions(
    ctx: Context,
    viewer: Viewer,
    flow_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    min_runs: int = DEFAULT_MIN_RUNS,
    alpha: float = DEFAULT_ALPHA,
) -> pa.Table:
    """One row per version whose life overlaps `[start, end)`, oldest first, each over its
    whole life: runs, errors, failure_rate, p50_ms/p95_ms of execution_time (exact,
    `quantile_cont`), cost_per_run (mean over priced runs), first_seen, last_seen; then the
    change from the previous version (current minus previous) with each test's statistic,
    p-value and `*_significant` flag (null on the first version); `significant` and `regressed`.
    """
    scope = open_scope(ctx, viewer, flow_id, start, end)
    if min_runs < 2:
        raise InvalidInput("min_runs must be at least 2", field="min_runs")
    if not 0 < alpha < 1:
        raise InvalidInput("alpha must be between 0 and 1", field="alpha")

    life = flow_scope(scope.grant)  # whole lives: the range only picks the versions listed

    def read(c: Connection) -> tuple[pa.Table, list[tuple[Any, ...]]]:
        versions: pa.Table = c.sql(_VERSIONS.format(scope=life[0]), params=life[1]).to_arrow_table()
        ranks = c.execute(_RANKS.format(scope=life[0]), [*life[1], *life[1]]).fetchall()
        return versions, ranks

    versions, rank_rows = ctx.store.read(in_snapshot(read))
    ranks = {pair: (n0, n1, r1, ties) for pair, n0, n1, r1, ties in rank_rows}
    rows = versions.to_pylist()
    # row k (0-based) is version k + 1 in SQL, so pair k + 1 compares rows k - 1 and k
    changes = [
        _compare(rows[k - 1], rows[k], ranks.get(k + 1), min_runs, alpha) if k else _FIRST
        for k in range(len(rows))
    ]
    for f in _CHANGE_FIELDS:
        versions = versions.append_column(f, pa.array([c[f.name] for c in changes], type=f.type))
    significant = [bool(c["failure_rate_significant"] or c["duration_significant"]) for c in changes]
    regressed = [
        bool(
            (c["failure_rate_significant"] and c["failure_rate_z"] > 0)
            or (c["duration_significant"] and c["duration_z"] > 0)
        )
        for c in changes
    ]
    versions = versions.append_column("significant", pa.array(significant, pa.bool_()))
    versions = versions.append_column("regressed", pa.array(regressed, pa.bool_()))
    lo = naive_utc(start) if start is not None else None
    hi = naive_utc(end) if end is not None else None
    listed = [(lo is None or r["last_seen"] >= lo) and (hi is None or r["first_seen"] < hi) for r in rows]
    return versions.filter(pa.array(listed, pa.bool_()))
