"""The values a flow's runs actually have, per filterable field: what filter choices offer.

A choice list made from the runs (not from the flow's definition or the user directory) never
offers a value that matches nothing, and keeps old versions and models that still have runs.
Access is checked first and row visibility applies: a reader who sees only their own runs is
offered only their own versions, models and user id.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# field -> the per-run list of its values (a run counts once per value, however many nodes use it)
_FIELDS = {
    "flow_version": "[flow_version]",
    "model": "list_distinct([n.model FOR n IN nodes])",
    "user_id": "[user_id]",
}


def run_facets(ctx: Context, viewer: Viewer, flow_id: str) -> Facets:
    """Per field, its values among the runs the caller sees, most runs first (ties by value)."""
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    scope, params = flow_scope(grant)

    def read_all(c: Connection) -> dict[str, Facet]:
        out: dict[str, Facet] = {}
        for field, values in _FIELDS.items():
            rows = c.execute(
                f"SELECT v, count(*) AS runs FROM (SELECT unnest({values}) AS v FROM executions WHERE {scope})"
                " WHERE v IS NOT NULL GROUP BY v ORDER BY runs DESC, v LIMIT ?",
                [*params, MAX_VALUES + 1],
            ).fetchall()
            out[field] = Facet([FacetValue(v, int(n)) for v, n in rows[:MAX_VALUES]], len(rows) > MAX_VALUES)
        return out

    facets = ctx.store.read(read_all)
    return Facets(**facets)
