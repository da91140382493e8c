"""Batch ingest for backfills: a JSON array or NDJSON of executions, a verdict per item."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from analytics.history import batch_bulk, ingest
from analytics.openwebui import importer
from api.dependencies import AdminUser, Ctx, CurrentUser
from api.json_body import JsonRoute, decode_error
from api.schemas.executions import BatchResultOut

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], route_class=JsonRoute)


def _items(body: bytes) -> list[Any]:
    """A JSON array the bulk path left (it starts with `[`): refused whole when it is not JSON."""
    try:
        data: list[Any] = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise decode_error(exc) from exc
    return data


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
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if "ndjson" not in content_type and "jsonl" not in content_type and body.lstrip()[:1] == b"[":
        result = await run_in_threadpool(batch_bulk.ingest_json_array, ctx, viewer, body)
        if result is not None:
            return result
        return await run_in_threadpool(ingest.ingest_batch, ctx, viewer, _items(body))
    return await run_in_threadpool(batch_bulk.ingest_ndjson, ctx, viewer, body)


class OpenWebUIImportIn(BaseModel):
    """One step of `flowhistory import openwebui` while this server holds the store."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(
        alias="from", min_length=1, description="sqlite:////path/webui.db or postgresql://..."
    )
    max_chunks: int = Field(default=4, ge=1, le=100)


@router.post("/import/openwebui")
async def import_openwebui_step(body: OpenWebUIImportIn, viewer: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Admins: import the next chunks of Open WebUI's history (resumable; call until finished)."""
    summary = await run_in_threadpool(importer.import_step, ctx, body.source, max_chunks=body.max_chunks)
    out = asdict(summary)
    out["report"] = None
    return out
