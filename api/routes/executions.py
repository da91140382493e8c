"""The contract's execution endpoints (E1-E6) plus the cursor list and keep-last-N cleanup.

`/executions/stats` and `/executions/list` are declared before `/executions/{execution_id}`.
Each route returns the library's object; its `response_model` reads it (`from_attributes`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from analytics.core.clock import QueryTime
from analytics.core.errors import NotFound
from analytics.history import facets, ingest, scope
from analytics.history import runs as history
from analytics.history.filters import ExecutionFilter
from analytics.history.scope import check_range
from api.dependencies import FLOW_FIRST, Ctx, CurrentUser
from api.json_body import JsonRoute, body_schema, read_json, validate
from api.openapi import maximum_from
from api.schemas.executions import (
    CleanupOut,
    ExecutionOut,
    ExecutionPageOut,
    ExecutionSummaryOut,
    FacetsOut,
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
    # the contract's order: the flow exists, may be read, then the body (its 422) is looked at
    try:
        scope.may_read(ctx, viewer, flow_id)
    except NotFound:
        # Open WebUI mode: a flow created there since the last read, whose first run the client
        # saves at once (and never again): read Open WebUI now, off the event loop, and retry once
        if not await run_in_threadpool(ctx.directory.refresh_for_miss, flow_id):
            raise
        scope.may_read(ctx, viewer, flow_id)  # found now: its access, still before the body
    form = validate(ingest.ExecutionCreate, await read_json(request, mend=True))
    return await asyncio.wrap_future(ingest.save(ctx, viewer, form, flow_id=flow_id))


@router.get("/{flow_id}/executions", response_model=list[ExecutionSummaryOut], dependencies=FLOW_FIRST)
def list_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, page: Annotated[int, Query(ge=1, le=history.MAX_PAGE)] = 1
) -> Any:
    """List executions, 60 per page, newest first (a bare array, as the client expects)."""
    return history.list_executions_page(ctx, viewer, flow_id, page=page)


# the stats' filter parameters -> the filter's fields (a 422 names the parameter, not the field)
_STATS_FILTER_PARAMS = {
    "status": "status",
    "flow_version": "flow_version",
    "model": "model",
    "user_id": "user_id",
    "created_at": "start",
    "error": "error",
    "tags": "tag",
}


def _stats_filter(
    status: list[str] | None,
    flow_version: list[str] | None,
    model: list[str] | None,
    user_id: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    error: str | None,
    tag: list[str] | None,
) -> ExecutionFilter | None:
    """The query's filters as the search's filter schema; None when none was given."""
    check_range(start, end)  # a message, as every range ending before it starts
    raw: dict[str, Any] = {
        name: {"any_": values}
        for name, values in (
            ("status", status),
            ("flow_version", flow_version),
            ("model", model),
            ("user_id", user_id),
        )
        if values
    }
    if start is not None or end is not None:
        raw["created_at"] = {"after_": start, "before_": end}
    if error is not None:
        raw["error"] = {"contains_": error}
    if tag:
        raw["tags"] = {"all_": tag}
    if not raw:
        return None
    try:
        return ExecutionFilter.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for err in errors:
            err["loc"] = ("query", _STATS_FILTER_PARAMS.get(str(err["loc"][0]), str(err["loc"][0])))
            err.pop("ctx", None)  # may hold exception objects, which are not JSON
        raise RequestValidationError(errors) from exc


@router.get("/{flow_id}/executions/stats", response_model=StatsOut, dependencies=FLOW_FIRST)
async def get_stats(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    status: Annotated[list[str] | None, Query(description="any of success, error, aborted")] = None,
    flow_version: Annotated[list[str] | None, Query(description="any of these versions")] = None,
    model: Annotated[
        list[str] | None, Query(description="runs with a node using any of these models")
    ] = None,
    user_id: Annotated[list[str] | None, Query(description="runs by any of these users")] = None,
    start: Annotated[QueryTime | None, Query(description="runs created at or after (inclusive)")] = None,
    end: Annotated[QueryTime | None, Query(description="runs created before (exclusive)")] = None,
    error: Annotated[str | None, Query(description="text in an error message, case-insensitive")] = None,
    tag: Annotated[list[str] | None, Query(description="runs carrying all of these tags")] = None,
) -> Any:
    """Execution statistics of a flow, as one snapshot; with filters, of the runs they keep."""
    filter = _stats_filter(status, flow_version, model, user_id, start, end, error, tag)
    if filter is None:  # the counters answer in microseconds: no thread hop
        return history.get_stats(ctx, viewer, flow_id)
    return await run_in_threadpool(history.get_stats, ctx, viewer, flow_id, filter)


@router.get("/{flow_id}/executions/facets", response_model=FacetsOut, dependencies=FLOW_FIRST)
def get_facets(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """The versions, models and users the flow's runs have (those the caller sees), most runs first."""
    return facets.run_facets(ctx, viewer, flow_id)


@router.get("/{flow_id}/executions/list", response_model=ExecutionPageOut, dependencies=FLOW_FIRST)
def list_executions_cursor(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int | None, Query(ge=1, json_schema_extra=maximum_from("list_limit_max"))] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    """List executions with a cursor and a total, newest first by (created_at, id)."""
    return history.list_executions(ctx, viewer, flow_id, limit=limit, cursor=cursor)


@router.post("/{flow_id}/executions/cleanup", response_model=CleanupOut, dependencies=FLOW_FIRST)
def keep_last_executions(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, keep: Annotated[int, Query(ge=0)] = history.KEEP_LAST_DEFAULT
) -> Any:
    """Keep only the newest `keep` executions of the flow (owner, admin or write-grantee)."""
    return history.keep_last_executions(ctx, viewer, flow_id, keep)


@router.get("/{flow_id}/executions/{execution_id}", response_model=ExecutionOut, dependencies=FLOW_FIRST)
def get_execution(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """One execution with its inputs, outputs, node results, errors and annotation."""
    return history.get_execution(ctx, viewer, flow_id, execution_id)


@router.delete("/{flow_id}/executions/{execution_id}", response_model=bool, dependencies=FLOW_FIRST)
def delete_execution(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete one execution."""
    history.delete_execution(ctx, viewer, flow_id, execution_id)
    return True


@router.delete("/{flow_id}/executions", response_model=bool, dependencies=FLOW_FIRST)
def delete_executions(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete every execution of the flow (true also when there were none)."""
    history.delete_executions(ctx, viewer, flow_id)
    return True
