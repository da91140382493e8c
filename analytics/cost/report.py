"""Where the money goes: cost per run, per flow, per model and per node; cost per successful
run; cost burned by runs that failed (status `error`) and, apart, by aborted runs. Also setting
prices and recomputing stored costs.

Cost is computed at ingest (ingest.py, cost.py). When prices change, an admin recomputes a
time range: every run in it is re-priced from its stored token counts (reported or estimated)
in one write, so the figures and the price table agree again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any

import pyarrow as pa

from analytics.access.permissions import Viewer, require_flow_access
from analytics.core.clock import naive_utc
from analytics.core.context import Context
from analytics.core.saturating import capped_sum
from analytics.core.store import Connection
from analytics.cost.prices import Price, replace_prices
from analytics.history import changes
from analytics.history.filters import visible_clause, where
from analytics.history.ingest import NODE_STRUCT
from analytics.history.node_facts import run_cost
from analytics.history.scope import check_range


class CostGroup(StrEnum):
    FLOW = "flow"
    USER = "user"
    MODEL = "model"
    NODE = "node"  # by node id across flows (ids the editor makes are unique to a flow)
    FLOW_NODE = "flow_node"  # by (flow, node id): a `flow_id` column beside `group`


def _sums(cost: str, tokens: str, has_model: str) -> str:
    """The report's aggregates over rows with the run's `status`, a cost and token columns, and
    `has_model`: whether a model is in the row (without one no cost is due: not unpriced).

    Per status the rows and the cost they burned: 0 when there are none, NULL when none of them
    has a known cost (as `cost` itself); a row without a model counts as a known 0.

    Costs add with `fsum`, exactly rounded (as math.fsum, the small trends' path): DuckDB's
    `sum` adds in the order its threads meet the rows, so the same report on unchanged data
    differed in its last digits from one call to the next, and from /metrics."""
    unpriced = f"{cost} IS NULL AND {has_model}"
    owed = f"coalesce({cost}, 0)"  # a row without a model owes nothing: 0, not unknown
    parts = ["count(*) AS runs", "count(*) FILTER (WHERE status = 'success') AS successful_runs"]
    for status in ("error", "aborted"):
        rows = f"count(*) FILTER (WHERE status = '{status}')"
        burned = f"fsum({owed}) FILTER (WHERE status = '{status}' AND NOT ({unpriced}))"
        parts += [
            f"{rows} AS {status}_runs",
            f"CASE WHEN {rows} = 0 THEN 0.0 ELSE {burned} END AS {status}_cost",
        ]
    parts += [
        f"fsum({owed}) FILTER (WHERE NOT ({unpriced})) AS cost",
        f"{capped_sum(tokens + 'tokens_in')} AS tokens_in, {capped_sum(tokens + 'tokens_out')} AS tokens_out",
        f"coalesce(bool_or({tokens}tokens_estimated), false) AS tokens_estimated",
        f"count(*) FILTER (WHERE {unpriced}) AS unpriced_runs",
        f"count(*) FILTER (WHERE status = 'success' AND NOT ({unpriced})) AS _priced_successes",
    ]
    return ",\n    ".join(parts)


# a run's cost is the sum of its nodes' known costs: with a model no price matches beside priced
# ones it is known but low, counted in `partly_unpriced_runs`
_PARTLY_UNPRICED = (
    "cost IS NOT NULL AND list_bool_or([n.model IS NOT NULL AND n.cost IS NULL FOR n IN nodes])"
)
_RUN_LEVEL = f"""
SELECT {{key}} AS "group", {_sums("cost", "", "coalesce(list_bool_or([n.model IS NOT NULL FOR n IN nodes]), false)")},
    count(*) FILTER (WHERE {_PARTLY_UNPRICED}) AS partly_unpriced_runs
FROM executions WHERE {{where}} GROUP BY ALL
"""
# a row is a node run; `status` is the status of the run it belongs to
_NODE_LEVEL = f"""
SELECT {{flow}}{{key}} AS "group", {_sums("n.cost", "n.", "n.model IS NOT NULL")}
FROM (SELECT flow_id, status, unnest(nodes) AS n FROM executions WHERE {{where}})
WHERE {{key}} IS NOT NULL GROUP BY ALL
"""


_NODE_KEYS = {CostGroup.MODEL: "model", CostGroup.NODE: "node_id"}


def cost_report(
    ctx: Context,
    viewer: Viewer,
    *,
    start: datetime,
    end: datetime,
    group_by: CostGroup = CostGroup.FLOW,
    flow_id: str | None = None,
) -> pa.Table:
    """One row per group, most expensive first, with `cost_per_run` and `cost_per_success`
    (all the group's cost divided by its successful runs: what one success really costs), both
    over the rows whose cost is known: a row no price matches is left out of both sides, as
    /nodes and /versions leave it (counted as free it would make the group look cheaper); null
    when no such row is known. By user, a reader sees only the users whose runs they may see.

    Runs split by status: `successful_runs`, `error_runs` (failed: status `error`, as in
    `failure_rate`) and `aborted_runs` (cancelled, not failed), with `error_cost` and
    `aborted_cost` the cost each burned. At model or node level a row is a node run and its
    status is the status of the run it belongs to. `unpriced_runs` counts rows with a model whose
    cost is unknown, not 0 (no price matches the model, or it has no token counts); a row
    without a model (an input node, a run of none) owes nothing and is not one of them. By flow
    or user, `partly_unpriced_runs` counts runs whose cost is known but leaves out such a model
    node (a lower bound).
    """
    check_range(start, end)
    start, end = naive_utc(start), naive_utc(end)
    clauses = [visible_clause(ctx.directory, viewer), ("created_at >= ? AND created_at < ?", [start, end])]
    if flow_id is not None:
        require_flow_access(ctx.directory, viewer, flow_id)
        clauses.append(("flow_id = ?", [flow_id]))
    sql, params = where(*clauses)
    order = 'cost DESC NULLS LAST, runs DESC, "group"'
    if group_by in (CostGroup.FLOW, CostGroup.USER):
        inner = _RUN_LEVEL.format(key=f"{group_by.value}_id", where=sql)
    elif group_by is CostGroup.FLOW_NODE:
        inner = _NODE_LEVEL.format(flow="flow_id, ", key="n.node_id", where=sql)
        order += ", flow_id"
    else:
        inner = _NODE_LEVEL.format(flow="", key=f"n.{_NODE_KEYS[group_by]}", where=sql)
    query = f"""
        SELECT * EXCLUDE (_priced_successes),
            CASE WHEN runs > unpriced_runs THEN cost / (runs - unpriced_runs) END AS cost_per_run,
            CASE WHEN _priced_successes > 0 THEN cost / _priced_successes END AS cost_per_success
        FROM ({inner}) ORDER BY {order}
    """

    def fetch(c: Connection) -> pa.Table:
        # DuckDB warns of an extra copy here (small: one row a group); tests/api/test_access_log.py
        # uses that warning to check that a repeated warning is logged once
        table = c.execute(query, params).to_arrow_table()
        assert table is not None  # None only when no statement ran
        return table

    return ctx.store.read(fetch)


def set_prices(ctx: Context, prices: list[Price]) -> list[Price]:
    """Replace the price table (admins); new runs are priced with it at once."""
    ctx.store.write(
        lambda c: replace_prices(c, prices), after_commit=lambda _: ctx.store.read(ctx.prices.load)
    )
    return ctx.prices.all()


# runs re-priced by one write: the writer commits other writes between two slices (the whole
# range in one write held every save for 15 s at 250,000 runs, 40 s under load)
REPRICE_SLICE = 20_000


def recompute_costs(ctx: Context, *, start: datetime, end: datetime) -> int:
    """Re-price every run created in [start, end) from its stored tokens; returns how many.

    The range is cut at every REPRICE_SLICE-th run's `created_at` into slices, each re-priced
    by one write (half-open slices: a run is in exactly one). A slice is read, priced and
    updated in its own transaction on the writer, so what it writes is what it read."""
    check_range(start, end)
    start, end = naive_utc(start), naive_utc(end)
    cuts = ctx.store.read(
        lambda c: [
            r[0]
            for r in c.execute(
                "SELECT created_at FROM (SELECT created_at, row_number() OVER (ORDER BY created_at) AS n"
                " FROM executions WHERE created_at >= ? AND created_at < ?) WHERE n % ? = 1 AND n > 1"
                " ORDER BY created_at",
                [start, end, REPRICE_SLICE],
            ).fetchall()
        ]
    )
    edges = [start, *sorted(set(cuts)), end]
    return sum(_reprice_slice(ctx, a, b) for a, b in pairwise(edges) if a < b)


def _reprice_slice(ctx: Context, start: datetime, end: datetime) -> int:
    def work(c: Connection) -> int:
        changes.invalidate(c, "created_at >= ? AND created_at < ?", [start, end])
        rows = c.execute(
            "SELECT id::VARCHAR, created_at, nodes FROM executions WHERE created_at >= ? AND created_at < ?",
            [start, end],
        ).fetchall()
        ids, costs, all_nodes = [], [], []
        for run_id, created, nodes in rows:
            day = created.date()
            priced: list[dict[str, Any]] = []
            for n in nodes:
                n = dict(n)
                n["cost"] = ctx.prices.cost(n["model"], day, n["tokens_in"], n["tokens_out"])
                priced.append(n)
            ids.append(run_id)
            costs.append(run_cost([n["model"] for n in priced], [n["cost"] for n in priced]))
            all_nodes.append(priced)
        if not ids:
            return 0
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "cost": pa.array(costs, pa.float64()),
                "nodes": pa.array(all_nodes, pa.list_(NODE_STRUCT)),
            }
        )
        c.register("_repriced", table)
        try:
            c.execute(
                "UPDATE executions SET cost = r.cost, nodes = r.nodes FROM _repriced r"
                " WHERE executions.id = r.id::UUID"
            )
        finally:
            c.unregister("_repriced")
        return len(ids)

    return int(ctx.store.write(work))
