"""Search and count executions across the flows the caller may read (Prefect-style POST bodies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from analytics.history import search
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.search import CountOut, CountQuery, SearchPageOut, SearchQuery

router = APIRouter(prefix="/api/v1/executions", tags=["search"], route_class=JsonRoute)


@router.post("/search", response_model=SearchPageOut)
def search_executions(query: SearchQuery, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Search executions: filters, sort, cursor pages, a total; payloads only when asked."""
    return search.search_executions(
        ctx,
        viewer,
        filter=query.filter,
        sort=query.sort,
        limit=query.limit,
        cursor=query.cursor,
        include_payloads=query.include_payloads,
        include_errors=query.include_errors,
    )


@router.post("/count", response_model=CountOut)
def count_executions(query: CountQuery, viewer: CurrentUser, ctx: Ctx) -> CountOut:
    """How many executions match the filter."""
    return CountOut(count=search.count_executions(ctx, viewer, filter=query.filter))
