"""The values a flow's runs actually have, per filterable field: what filter choices offer.

A choice list made from the runs (not from the flow's definition or the user directory) never
offers a value that matches nothing, and keeps old versions and models that still have runs.
Access is checked first and row visibility applies: a reader who sees only their own runs is
offered only their own versions, models and user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.access.permissions import Viewer, require_flow_access
from analytics.core.context import Context
from analytics.core.store import Connection
from analytics.history.scope import flow_scope

MAX_VALUES = 200  # per field, the values with most runs; `truncated` says when more exist


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    runs: int


@dataclass(frozen=True, slots=True)
class Facet:
    values: list[FacetValue]
    truncated: bool


@dataclass(frozen=True, slots=True)
class Facets:
    flow_version: Facet
    model: Facet
    user_id: Facet


_COLUMNS = {"flow_version": "flow_version", "user_id": "user_id"}
# Runs grouped by their list of node models (a flow has few distinct lists), then counted per
# model here, once per run: 3-4x faster than unnesting every run's nodes (1M runs: ~0.3 s
# against ~1.1 s). Past this many distinct lists the unnesting query answers instead.
_MODEL_LISTS = 10_000
_MODELS_BY_LIST = (
    "SELECT [n.model FOR n IN nodes] AS models, count(*) FROM executions WHERE {scope} GROUP BY 1 LIMIT ?"
)
_MODELS_UNNESTED = (
    "SELECT v, count(*) FROM (SELECT unnest(list_distinct([n.model FOR n IN nodes])) AS v"
    " FROM executions WHERE {scope}) WHERE v IS NOT NULL GROUP BY v"
)


def _facet(counts: dict[str, int]) -> Facet:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return Facet([FacetValue(v, n) for v, n in ranked[:MAX_VALUES]], len(ranked) > MAX_VALUES)


def _model_counts(c: Connection, scope: str, params: list[Any]) -> dict[str, int]:
    lists = c.execute(_MODELS_BY_LIST.format(scope=scope), [*params, _MODEL_LISTS + 1]).fetchall()
    if len(lists) > _MODEL_LISTS:
        return {v: int(n) for v, n in c.execute(_MODELS_UNNESTED.format(scope=scope), params).fetchall()}
    counts: dict[str, int] = {}
    for models, n in lists:
        for model in {m for m in models if m is not None}:
            counts[model] = counts.get(model, 0) + int(n)
    return counts


def run_facets(ctx: Context, viewer: Viewer, flow_id: str) -> Facets:
    """Per field, its values among the runs the caller sees, most runs first (ties by value)."""
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    scope, params = flow_scope(grant)

    def read_all(c: Connection) -> Facets:
        found: dict[str, Facet] = {}
        for field, column in _COLUMNS.items():
            rows = c.execute(
                f"SELECT {column}, count(*) FROM executions WHERE {scope} AND {column} IS NOT NULL GROUP BY 1",
                params,
            ).fetchall()
            found[field] = _facet({v: int(n) for v, n in rows})
        return Facets(
            flow_version=found["flow_version"],
            model=_facet(_model_counts(c, scope, params)),
            user_id=found["user_id"],
        )

    return ctx.store.read(read_all)
