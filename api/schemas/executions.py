"""Execution shapes exactly as the contract names them (`created_at` in epoch seconds).

Each model reads the library's dataclass (`from_attributes`): a route returns the library's
object and FastAPI validates and serialises it in pydantic-core, straight to JSON bytes.

The hand-written dict + orjson converters these replaced were 1.3-8x faster in isolation, but
that is microseconds against milliseconds per request: at most 1.10x on a whole request (a
460 KB detail), 1.00-1.06x on save, list, cursor page, stats and batch answers. Measured with
`PYTHONPATH=$PWD python -m bench.schema_ab` (issue 11); re-measure before bringing one back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from api.schemas.timestamps import EpochSeconds

_READ = ConfigDict(from_attributes=True)


class AnnotationOut(BaseModel):
    model_config = _READ

    execution_id: str
    flow_id: str
    note: str | None
    tags: list[str]
    rating: Literal[-1, 1] | None
    updated_by: str
    updated_at: EpochSeconds


class ExecutionSummaryOut(BaseModel):
    model_config = _READ

    id: str
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: EpochSeconds


class ExecutionRowOut(ExecutionSummaryOut):
    """A run's summary with its analytics columns (search hits, compared runs)."""

    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    flow_version: str | None
    replay_of: str | None


class ExecutionOut(ExecutionRowOut):
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    node_results: dict[str, Any] | None
    errors: dict[str, Any] | None
    meta: dict[str, Any]
    annotation: AnnotationOut | None = None  # notes, tags, rating: only in the detail
    # per-node facts (status, duration, tokens, cost, error), as stored at ingest
    nodes: list[dict[str, Any]] | None = None


class ExecutionPageOut(BaseModel):
    model_config = _READ

    items: list[ExecutionSummaryOut]
    next_cursor: str | None
    total: int


class StatsOut(BaseModel):
    model_config = _READ

    total_executions: int
    success_count: int
    error_count: int
    aborted_count: int
    avg_execution_time: float
    last_execution_at: EpochSeconds | None


class ItemResultOut(BaseModel):
    model_config = _READ

    index: int
    status: Literal["stored", "refused"]
    id: str | None = None
    detail: str | None = None


class BatchResultOut(BaseModel):
    model_config = _READ

    stored: int
    refused: int
    items: list[ItemResultOut]


class CleanupOut(BaseModel):
    model_config = _READ

    deleted: int
    kept: int


class FacetValueOut(BaseModel):
    model_config = _READ

    value: str
    runs: int


class FacetOut(BaseModel):
    model_config = _READ

    values: list[FacetValueOut]
    truncated: bool


class FacetsOut(BaseModel):
    """Per filterable field, the values the flow's runs (those the caller sees) have."""

    model_config = _READ

    flow_version: FacetOut
    model: FacetOut
    user_id: FacetOut
