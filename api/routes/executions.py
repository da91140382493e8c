"""The contract's execution endpoints (E1-E6) plus the cursor list and keep-last-N cleanup.

`/executions/stats` and `/executions/list` are declared before `/executions/{execution_id}`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from analytics.access.permissions import require_flow_access
from analytics.history import ingest
from analytics.history import runs as history
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, body_schema, json_response, read_json, validate
from api.schemas.annotations import annotation_dict
from api.schemas.executions import (
    CleanupOut,
    ExecutionOut,
    ExecutionPageOut,
    ExecutionSummaryOut,
    StatsOut,
    execution_dict,
    page_dict,
    stats_dict,
    summary_dict,
)

router = APIRouter(prefix="/api/v1/flows", tags=["executions"], route_class=JsonRoute)


@router.post(
    "/{flow_id}/executions",
    response_model=ExecutionOut,
    openapi_extra=body_schema(ingest.ExecutionCreate),
)
async def save_execution(flow_id: str, request: Request, viewer: CurrentUser, ctx: Ctx) -> Response:
    """Save one execution; answered after it is committed."""
    form = validate(ingest.ExecutionCreate, await read_json(request))
    staged = ingest.stage(ctx, viewer, form, flow_id=flow_id)
    await asyncio.wrap_future(ingest.submit(ctx, [staged]))
    return json_response(execution_dict(staged.execution))


@router.get("/{flow_id}/executions", response_model=list[ExecutionSummaryOut])
def list_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """List executions, 60 per page, newest first (a bare array, as the client expects)."""
    rows = history.list_executions_page(ctx, viewer, flow_id, page=page)
    return json_response([summary_dict(s) for s in rows])


@router.get("/{flow_id}/executions/stats", response_model=StatsOut)
async def get_stats(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Response:
    """Execution statistics of a flow, as one snapshot."""
    return json_response(stats_dict(history.get_stats(ctx, viewer, flow_id)))


@router.get("/{flow_id}/executions/list", response_model=ExecutionPageOut)
def list_executions_cursor(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """List executions with a cursor and a total, newest first by (created_at, id)."""
    return json_response(page_dict(history.list_executions(ctx, viewer, flow_id, limit=limit, cursor=cursor)))


@router.post("/{flow_id}/executions/cleanup", response_model=CleanupOut)
async def keep_last_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, keep: Annotated[int, Query(ge=0)] = 50
) -> CleanupOut:
    """Keep only the newest `keep` executions of the flow (owner, admin or write-grantee)."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)
    deleted = await run_in_threadpool(history.delete_old_executions_by_flow_id, ctx, flow_id, keep)
    kept = ctx.counters.stats(flow_id).total_executions
    return CleanupOut(deleted=deleted, kept=kept)


@router.get("/{flow_id}/executions/{execution_id}", response_model=ExecutionOut)
def get_execution(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Response:
    """One execution with its inputs, outputs, node results, errors and annotation."""
    execution = history.get_execution(ctx, viewer, flow_id, execution_id)
    body = execution_dict(execution)
    body["annotation"] = annotation_dict(execution.annotation) if execution.annotation else None
    return json_response(body)


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
