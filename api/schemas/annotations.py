"""Shapes for compare, replay and annotations; times are epoch seconds, as the contract's are.

Each answer model reads the library's dataclass (`from_attributes`). The annotation input
(`AnnotationUpdate`) lives in analytics beside the code that stores it, so the library and the
API refuse the same things; it is re-exported here for the routes.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, computed_field

from analytics.history.annotations import AnnotationUpdate
from analytics.history.compare import MAX_RUNS, MIN_RUNS
from api.schemas.executions import AnnotationOut, ExecutionRowOut
from api.schemas.timestamps import EpochSeconds

__all__ = [
    "AnnotationOut",
    "AnnotationUpdate",
    "CompareRequest",
    "ComparisonOut",
    "ReplayOut",
]

_READ = ConfigDict(from_attributes=True)


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(
        min_length=MIN_RUNS, max_length=MAX_RUNS, description="the first is the baseline of every diff"
    )


class ChangeOut(BaseModel):
    model_config = _READ

    path: str = Field(description="JSON Pointer into the node's result; empty for the whole result")
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class DiffOut(BaseModel):
    model_config = _READ

    changes: list[ChangeOut]
    truncated: bool = Field(description="more changes (or deeper ones) than shown")


class NodeRunOut(BaseModel):
    model_config = _READ

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
    model_config = _READ

    node_id: str
    differs: bool
    runs: list[NodeRunOut]


class ComparisonOut(BaseModel):
    model_config = _READ

    executions: list[ExecutionRowOut]
    nodes: list[NodeComparisonOut] = Field(description="differing nodes first")
    max_depth: int
    max_changes: int


class FlowDefinitionOut(BaseModel):
    model_config = _READ

    version: str | None
    nodes: list[Any]
    edges: list[Any]
    updated_at: EpochSeconds | None


class ReplayOut(BaseModel):
    model_config = _READ

    execution_id: str
    flow_id: str
    inputs: dict[str, Any] | None
    definition: FlowDefinitionOut
    definition_is_current: bool = Field(description="the version that ran is unknown; this is today's")
    body: dict[str, Any] = Field(description="add status, node_results, outputs, errors, execution_time")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def post_to(self) -> str:
        """Where to POST `body`: the flow's executions (an API path, so the API names it)."""
        return f"/api/v1/flows/{quote(self.flow_id, safe='')}/executions"
