"""Execution shapes exactly as the contract names them (`created_at` in epoch seconds)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from analytics.history.counters import Stats
from analytics.history.ingest import ItemResult
from analytics.history.pagination import Page
from analytics.history.runs import Execution, ExecutionRow, ExecutionSummary
from api.schemas.timestamps import epoch_or_none, epoch_seconds


class ExecutionOut(BaseModel):
    id: str
    flow_id: str
    user_id: str
    status: str
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    node_results: dict[str, Any] | None
    errors: dict[str, Any] | None
    execution_time: int
    created_at: int
    meta: dict[str, Any]
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    flow_version: str | None
    replay_of: str | None
    annotation: dict[str, Any] | None = None  # notes, tags, rating: only in the detail
    # per-node facts (status, duration, tokens, cost, error), as stored at ingest
    nodes: list[dict[str, Any]] | None = None


class ExecutionSummaryOut(BaseModel):
    id: str
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: int


class ExecutionRowOut(BaseModel):
    """A run's summary with its analytics columns (search hits, compared runs)."""

    id: str
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: int
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    flow_version: str | None
    replay_of: str | None


class ExecutionPageOut(BaseModel):
    items: list[ExecutionSummaryOut]
    next_cursor: str | None
    total: int


class StatsOut(BaseModel):
    total_executions: int
    success_count: int
    error_count: int
    aborted_count: int
    avg_execution_time: float
    last_execution_at: int | None


class ItemResultOut(BaseModel):
    index: int
    status: Literal["stored", "refused"]
    id: str | None = None
    detail: str | None = None


class BatchResultOut(BaseModel):
    stored: int
    refused: int
    items: list[ItemResultOut]


class CleanupOut(BaseModel):
    deleted: int
    kept: int


def summary_dict(s: ExecutionSummary | ExecutionRow | Execution) -> dict[str, Any]:
    return {
        "id": s.id,
        "flow_id": s.flow_id,
        "user_id": s.user_id,
        "status": s.status,
        "execution_time": s.execution_time,
        "created_at": epoch_seconds(s.created_at),
    }


def row_dict(r: ExecutionRow | Execution) -> dict[str, Any]:
    return {
        **summary_dict(r),
        "tokens_in": r.tokens_in,
        "tokens_out": r.tokens_out,
        "tokens_estimated": r.tokens_estimated,
        "cost": r.cost,
        "flow_version": r.flow_version,
        "replay_of": r.replay_of,
    }


def execution_dict(e: Execution) -> dict[str, Any]:
    """Plain dict for orjson: the ingest and detail paths skip pydantic serialisation."""
    return {
        **row_dict(e),
        "inputs": e.inputs,
        "outputs": e.outputs,
        "node_results": e.node_results,
        "errors": e.errors,
        "meta": e.meta,
        "annotation": None,  # the detail route fills it in
        "nodes": e.nodes,
    }


def page_dict(page: Page[ExecutionSummary]) -> dict[str, Any]:
    return {
        "items": [summary_dict(s) for s in page.items],
        "next_cursor": page.next_cursor,
        "total": page.total,
    }


def stats_dict(s: Stats) -> dict[str, Any]:
    return {
        "total_executions": s.total_executions,
        "success_count": s.success_count,
        "error_count": s.error_count,
        "aborted_count": s.aborted_count,
        "avg_execution_time": s.avg_execution_time,
        "last_execution_at": epoch_or_none(s.last_execution_at),
    }


def batch_dict(results: list[ItemResult]) -> dict[str, Any]:
    stored = sum(1 for r in results if r.status == "stored")
    return {
        "stored": stored,
        "refused": len(results) - stored,
        "items": [{"index": r.index, "status": r.status, "id": r.id, "detail": r.detail} for r in results],
    }
