"""Batch ingest for backfills: a JSON array or NDJSON of executions, a verdict per item."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from analytics.core.errors import InvalidInput
from analytics.history import ingest
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, decode_error
from api.schemas.executions import BatchResultOut

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], route_class=JsonRoute)


def _items(body: bytes, content_type: str) -> list[Any]:
    """A JSON array, or one JSON object per line; a bad line is refused, not fatal."""
    stripped = body.lstrip()
    if "ndjson" not in content_type and "jsonl" not in content_type and stripped[:1] == b"[":
        try:
            data: list[Any] = orjson.loads(body)  # an array: it starts with `[`
        except orjson.JSONDecodeError as exc:
            raise decode_error(exc) from exc
        return data
    items: list[Any] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(InvalidInput(f"line {number} is not JSON: {exc.msg}"))
    return items


@router.post(
    "/batch",
    response_model=BatchResultOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": ingest.ExecutionImport.model_json_schema()}
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def ingest_batch(request: Request, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Store many executions; each item is reported as stored or refused, with the reason."""
    items = _items(await request.body(), request.headers.get("content-type", ""))
    return await run_in_threadpool(ingest.ingest_batch, ctx, viewer, items)
