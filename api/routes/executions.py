"""The contract's execution endpoints (E1-E6) plus the cursor list and keep-last-N cleanup.

`/executions/stats` and `/executions/list` are declared before `/executions/{execution_id}`.
Each route returns the library's object; its `response_model` reads it (`from_attributes`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from analytics.history import ingest
from analytics.history import runs as history
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, body_schema, read_json, validate
from api.schemas.executions import (
    CleanupOut,
    ExecutionOut,
    ExecutionPageOut,
    ExecutionSummaryOut,
    StatsOut,
)

router = APIRouter(prefix="/api/v1/flows", tags=["executions"], route_class=JsonRoute)


@router.post(
    "/{flow_id}/executions",
    response_model=ExecutionOut,
    openapi_extra=body_schema(ingest.ExecutionCreate),
)
async def save_execution(flow_id: str, request: Request, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Save one execution; answered after it is committed."""
    form = validate(ingest.ExecutionCreate, await read_json(request))
    return await asyncio.wrap_future(ingest.save(ctx, viewer, form, flow_id=flow_id))


@router.get("/{flow_id}/executions", response_model=list[ExecutionSummaryOut])
def list_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, page: Annotated[int, Query(ge=1)] = 1
) -> Any:
    """List executions, 60 per page, newest first (a bare array, as the client expects)."""
    return history.list_executions_page(ctx, viewer, flow_id, page=page)


@router.get("/{flow_id}/executions/stats", response_model=StatsOut)
async def get_stats(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Execution statistics of a flow, as one snapshot."""
    return history.get_stats(ctx, viewer, flow_id)


@router.get("/{flow_id}/executions/list", response_model=ExecutionPageOut)
def list_executions_cursor(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    """List executions with a cursor and a total, newest first by (created_at, id)."""
    return history.list_executions(ctx, viewer, flow_id, limit=limit, cursor=cursor)


@router.post("/{flow_id}/executions/cleanup", response_model=CleanupOut)
def keep_last_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, keep: Annotated[int, Query(ge=0)] = history.KEEP_LAST_DEFAULT
) -> Any:
    """Keep only the newest `keep` executions of the flow (owner, admin or write-grantee)."""
    return history.keep_last_executions(ctx, viewer, flow_id, keep)


@router.get("/{flow_id}/executions/{execution_id}", response_model=ExecutionOut)
def get_execution(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """One execution with its inputs, outputs, node results, errors and annotation."""
    return history.get_execution(ctx, viewer, flow_id, execution_id)


@router.delete("/{flow_id}/executions/{execution_id}", response_model=bool)
def delete_execution(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete one execution."""
    history.delete_execution(ctx, viewer, flow_id, execution_id)
    return True


@router.delete("/{flow_id}/executions", response_model=bool)
def delete_executions(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete every execution of the flow (true also when there were none)."""
    history.delete_executions(ctx, viewer, flow_id)
    return True
