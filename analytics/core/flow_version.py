"""A flow definition's version: in core, as the registry (flows) and backfilled runs (history) share it."""

from __future__ import annotations

import hashlib
from typing import Any

from analytics.core.errors import InvalidInput
from analytics.core.jsonio import NOT_JSON, canonical


def flow_version(nodes: list[Any], edges: list[Any]) -> str:
    """What ran: a hash of the graph (nodes and edges, keys sorted), not of name or meta."""
    try:
        graph = canonical(nodes) + canonical(edges)
    except NOT_JSON as exc:
        raise InvalidInput(f"nodes or edges are nested too deeply or not JSON: {exc}", field="nodes") from exc
    return hashlib.sha256(graph).hexdigest()[:16]
