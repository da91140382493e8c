"""Anomalous runs: duration or cost far outside the flow's rolling baseline.

The baseline of a run is the `window` runs before it (by `(created_at, id)`, default 100) that
the caller sees and that have the metric (cost is null for unpriced runs; those are skipped).
Its centre is the median, its spread the MAD (median absolute deviation from the median),
both DuckDB window functions, so one slow run cannot drag the baseline the way a mean would.
The score is Iglewicz and Hoaglin's modified z-score, 0.6745 * (x - median) / MAD, and a run
is listed when |z| >= `threshold` (default 3.5, their recommendation); a negative z is an
unusually fast or cheap run.

MAD = 0 (more than half the baseline identical, common for cost): the score falls back to
(x - median) / (1.253314 * MeanAD), MeanAD being the mean absolute deviation from the median,
as IBM SPSS does; 1.253314 * MeanAD estimates sigma as 1.4826 * MAD does. When MeanAD is 0 too
the baseline is constant and has no scale, so the run is not scored (not listed).

A run needs at least `MIN_BASELINE` (10) earlier runs to be scored. With a time range, runs
in `[start, end)` are scored, but their baselines reach back before `start`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.history.scope import flow_scope, open_scope

MIN_BASELINE = 10
MAX_WINDOW = 10_000
MAX_LIMIT = 1000


class Metric(StrEnum):
    duration = "duration"
    cost = "cost"


# a run without a model node costs 0 by construction, not by chance: it is no baseline for the
# runs that called one (a quarter of such runs made every priced run look expensive, and each of
# them "unusually cheap")
_COLUMN = {
    Metric.duration: "execution_time::DOUBLE",
    Metric.cost: "CASE WHEN list_bool_or([n.model IS NOT NULL FOR n IN nodes]) THEN cost END",
}

_ANOMALIES = """
WITH series AS (
    SELECT id, created_at, {column} AS value,
        row_number() OVER (ORDER BY created_at, id) AS rn
    FROM executions WHERE {scope} AND {column} IS NOT NULL
),
first_scored AS (
    SELECT coalesce(min(rn), 0) AS rn FROM series WHERE created_at >= ?
),
baseline AS (  -- windows only over the scored runs and the `window` runs before them
    SELECT *,
        median(value) OVER w AS median,
        mad(value) OVER w AS mad,
        count(*) OVER w AS baseline_runs
    FROM series
    WHERE rn >= (SELECT rn FROM first_scored) - ?
    WINDOW w AS (ORDER BY rn ROWS BETWEEN ? PRECEDING AND 1 PRECEDING)
),
candidates AS (
    SELECT * FROM baseline
    WHERE created_at >= ? AND baseline_runs >= ? AND value <> median
),
flat AS (
    SELECT c.rn, avg(abs(p.value - c.median)) AS mean_ad
    FROM candidates c JOIN series p ON p.rn BETWEEN c.rn - ? AND c.rn - 1
    WHERE c.mad = 0
    GROUP BY c.rn
),
scored AS (
    SELECT c.*, f.mean_ad,
        CASE
            WHEN c.mad > 0 THEN 0.6745 * (c.value - c.median) / c.mad
            WHEN f.mean_ad > 0 THEN (c.value - c.median) / (1.253314 * f.mean_ad)
        END AS robust_z
    FROM candidates c LEFT JOIN flat f USING (rn)
)
SELECT id::VARCHAR AS execution_id, created_at, value, median, mad, mean_ad, baseline_runs, robust_z
FROM scored
WHERE abs(robust_z) >= ?
ORDER BY created_at DESC, id DESC
LIMIT ?
"""


def find_anomalies(
    ctx: Context,
    viewer: Viewer,
    flow_id: str,
    *,
    metric: Metric | str = Metric.duration,
    window: int = 100,
    threshold: float = 3.5,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> pa.Table:
    """Runs in range whose |robust z| >= threshold, newest first: execution_id, created_at,
    value (ms or USD), median and mad of the baseline, mean_ad (only when mad is 0),
    baseline_runs, robust_z.
    """
    scope = open_scope(ctx, viewer, flow_id, start, end)
    try:
        column = _COLUMN[Metric(metric)]
    except ValueError:
        raise InvalidInput("metric must be duration or cost", field="metric") from None
    if not MIN_BASELINE <= window <= MAX_WINDOW:
        raise InvalidInput(f"window must be between {MIN_BASELINE} and {MAX_WINDOW}", field="window")
    if not 0 < threshold <= 1000:
        raise InvalidInput("threshold must be above 0 and at most 1000", field="threshold")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    # baselines reach back before `start`: the series is read from the beginning
    sql_scope, params = flow_scope(scope.grant, None, end)
    scored_from = datetime.min if start is None else naive_utc(start)
    sql = _ANOMALIES.format(scope=sql_scope, column=column)
    all_params = [*params, scored_from, window, window, scored_from, MIN_BASELINE, window, threshold, limit]
    table: pa.Table = ctx.store.read(lambda c: c.sql(sql, params=all_params).to_arrow_table())
    return table
