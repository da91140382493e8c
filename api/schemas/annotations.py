"""Shapes for compare, replay and annotations; times are epoch seconds, as the contract's are.

The annotation input (`AnnotationUpdate`) lives in analytics beside the code that stores it, so
the library and the API refuse the same things; it is re-exported here for the routes.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from analytics.history.annotations import Annotation, AnnotationUpdate
from analytics.history.compare import MAX_RUNS, MIN_RUNS, Comparison, NodeRun
from analytics.history.replay import ReplayPayload
from api.schemas.executions import ExecutionRowOut, row_dict
from api.schemas.timestamps import epoch_or_none, epoch_seconds

__all__ = [
    "AnnotationOut",
    "AnnotationUpdate",
    "CompareRequest",
    "ComparisonOut",
    "ReplayOut",
    "annotation_dict",
    "comparison_dict",
    "replay_dict",
]


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(
        min_length=MIN_RUNS, max_length=MAX_RUNS, description="the first is the baseline of every diff"
    )


class ChangeOut(BaseModel):
    path: str = Field(description="JSON Pointer into the node's result; empty for the whole result")
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class DiffOut(BaseModel):
    changes: list[ChangeOut]
    truncated: bool = Field(description="more changes (or deeper ones) than shown")


class NodeRunOut(BaseModel):
    present: bool
    status: str | None
    model: str | None
    duration_ms: int | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    error: str | None
    diff: DiffOut | None = Field(description="against the first run; null for the first run")


class NodeComparisonOut(BaseModel):
    node_id: str
    differs: bool
    runs: list[NodeRunOut]


class ComparisonOut(BaseModel):
    executions: list[ExecutionRowOut]
    nodes: list[NodeComparisonOut] = Field(description="differing nodes first")
    max_depth: int
    max_changes: int


class FlowDefinitionOut(BaseModel):
    version: str | None
    nodes: list[Any]
    edges: list[Any]
    updated_at: int | None


class ReplayOut(BaseModel):
    execution_id: str
    flow_id: str
    inputs: dict[str, Any] | None
    definition: FlowDefinitionOut
    definition_is_current: bool = Field(description="the version that ran is unknown; this is today's")
    body: dict[str, Any] = Field(description="add status, node_results, outputs, errors, execution_time")
    post_to: str


class AnnotationOut(BaseModel):
    execution_id: str
    flow_id: str
    note: str | None
    tags: list[str]
    rating: Literal[-1, 1] | None
    updated_by: str
    updated_at: int


def _node_run(r: NodeRun) -> dict[str, Any]:
    diff = r.diff
    return {
        "present": r.present,
        "status": r.status,
        "model": r.model,
        "duration_ms": r.duration_ms,
        "tokens_in": r.tokens_in,
        "tokens_out": r.tokens_out,
        "tokens_estimated": r.tokens_estimated,
        "cost": r.cost,
        "error": r.error,
        "diff": None
        if diff is None
        else {
            "changes": [{"path": c.path, "kind": c.kind, "old": c.old, "new": c.new} for c in diff.changes],
            "truncated": diff.truncated,
        },
    }


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """Plain dicts for orjson: results may be large, pydantic would copy them twice."""
    return {
        "executions": [row_dict(e) for e in c.executions],
        "nodes": [
            {"node_id": n.node_id, "differs": n.differs, "runs": [_node_run(r) for r in n.runs]}
            for n in c.nodes
        ],
        "max_depth": c.max_depth,
        "max_changes": c.max_changes,
    }


def replay_dict(p: ReplayPayload) -> dict[str, Any]:
    d = p.definition
    return {
        "execution_id": p.execution_id,
        "flow_id": p.flow_id,
        "inputs": p.inputs,
        "definition": {
            "version": d.version,
            "nodes": d.nodes,
            "edges": d.edges,
            "updated_at": epoch_or_none(d.updated_at),
        },
        "definition_is_current": p.definition_is_current,
        "body": p.body,
        "post_to": f"/api/v1/flows/{quote(p.flow_id, safe='')}/executions",
    }


def annotation_dict(a: Annotation) -> dict[str, Any]:
    return {
        "execution_id": a.execution_id,
        "flow_id": a.flow_id,
        "note": a.note,
        "tags": list(a.tags),
        "rating": a.rating,
        "updated_by": a.updated_by,
        "updated_at": epoch_seconds(a.updated_at),
    }
