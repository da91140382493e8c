"""Streaming downloads of search results (across readable flows) or of one flow's runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from analytics.core.batch_formats import Format
from analytics.history import download
from analytics.history.search import ExecutionSort
from api.dependencies import FLOW_FIRST, Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.download import FilterParam, FormatParam, SortParam, parse_filter

router = APIRouter(prefix="/api/v1", tags=["download"], route_class=JsonRoute)

_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {f.media_type: {} for f in Format}, "description": "the file, streamed"}
}


def _response(d: download.Download) -> StreamingResponse:
    return StreamingResponse(
        d.chunks,
        media_type=d.media_type,
        headers={"Content-Disposition": f'attachment; filename="{d.filename}"'},
    )


@router.get("/executions/download", response_class=StreamingResponse, responses=_FILE)
def download_executions(
    viewer: CurrentUser,
    ctx: Ctx,
    format: FormatParam = Format.CSV,
    filter: FilterParam = None,
    sort: SortParam = ExecutionSort.NEWEST,
) -> StreamingResponse:
    """Every run you may see matching the search filter, as CSV, JSON Lines or Parquet."""
    return _response(
        download.download_executions(ctx, viewer, format, filter=parse_filter(filter), sort=sort)
    )


@router.get(
    "/flows/{flow_id}/executions/download",
    response_class=StreamingResponse,
    responses=_FILE,
    dependencies=FLOW_FIRST,
)
def download_flow_executions(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    format: FormatParam = Format.CSV,
    filter: FilterParam = None,
    sort: SortParam = ExecutionSort.NEWEST,
) -> StreamingResponse:
    """One flow's runs you may see, filtered as in search, as CSV, JSON Lines or Parquet."""
    return _response(
        download.download_executions(
            ctx, viewer, format, filter=parse_filter(filter), sort=sort, flow_id=flow_id
        )
    )
