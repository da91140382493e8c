"""Per-node breakdown of one flow: where the time, the failures, the tokens and the cost go."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.saturating import capped_sum
from analytics.history.scope import open_scope

_BREAKDOWN = """
SELECT
    n.node_id AS node_id,
    n.node_type AS node_type,
    n.model AS model,
    count(*) AS runs,
    count(*) FILTER (WHERE n.status = 'error') AS errors,
    count(*) FILTER (WHERE n.status = 'error') / count(*) AS failure_rate,
    count(n.duration_ms) AS timed_runs,
    {total_ms} AS total_ms,
    quantile_cont(n.duration_ms, 0.5) AS p50_ms,
    quantile_cont(n.duration_ms, 0.95) AS p95_ms,
    quantile_cont(share, 0.5) AS share_p50,
    quantile_cont(share, 0.95) AS share_p95,
    {tokens_in} AS tokens_in,
    {tokens_out} AS tokens_out,
    coalesce(bool_or(n.tokens_estimated), false) AS tokens_estimated,
    fsum(n.cost) AS cost,
    avg(n.cost) AS cost_per_run
FROM (
    SELECT n, CASE WHEN execution_time > 0 THEN n.duration_ms / execution_time END AS share
    FROM (SELECT execution_time, unnest(nodes) AS n FROM executions WHERE {scope})
)
GROUP BY ALL
ORDER BY total_ms DESC NULLS LAST, runs DESC, node_id, node_type NULLS FIRST, model NULLS FIRST
"""


def node_breakdown(
    ctx: Context,
    viewer: Viewer,
    flow_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """One row per (node_id, node_type, model) over the runs the caller sees, heaviest first.

    - `runs`: runs in which the node appears; `errors`/`failure_rate`: of those, the node's
      status was error (a node named in the run's `errors` is an error, see node_facts.py).
    - `p50_ms`/`p95_ms`: exact percentiles (linear interpolation, `quantile_cont`) of the node's
      reported `duration_ms`; `total_ms` is their sum, the sort key.
    - `share_p50`/`share_p95`: per run, share = node duration_ms / the run's execution_time, then
      the median and the 95th percentile of that ratio over runs. It is the percentile of the
      share, not p50 duration divided by p50 run time, so it answers "in a typical (p50) or a bad
      (p95) run, what fraction of the run's time did this node take". Runs with execution_time
      0 give no share. Nodes run in parallel, or timed by a different clock, can exceed 1.
    - Nodes that report no duration (today's editor payloads carry none) are still listed, with
      `timed_runs` = 0 and null durations and shares: absent data is shown as absent, not as 0.
    - `tokens_in`/`tokens_out` are sums of what was reported or estimated; `tokens_estimated`
      is true if any of them was estimated from text length. `cost` is the sum in USD and
      `cost_per_run` its mean over runs where the node was priced (null when never priced).
    """
    scope = open_scope(ctx, viewer, flow_id, start, end)
    sql = _BREAKDOWN.format(
        scope=scope.sql,
        total_ms=capped_sum("n.duration_ms"),
        tokens_in=capped_sum("n.tokens_in"),
        tokens_out=capped_sum("n.tokens_out"),
    )
    table: pa.Table = ctx.store.read(lambda c: c.sql(sql, params=scope.params).to_arrow_table())
    return table
