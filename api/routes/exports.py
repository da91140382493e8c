"""Parquet exports: run a cycle now, and its status (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from analytics import exports
from analytics.core.errors import NotFound
from api.dependencies import AdminUser, Ctx
from api.json_body import JsonRoute, json_response
from api.schemas.exports import ExportRunOut, ExportStatusOut

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], route_class=JsonRoute)


@router.post("/run", response_model=ExportRunOut, responses={409: {}, 502: {}})
def run_export(_: AdminUser, ctx: Ctx) -> object:
    """Run one export cycle now and wait for it: the scheduler's `export` job when the server
    has one (409 if it is already running), else directly. 502 when the target failed."""
    result = None
    error = None
    job = None
    if ctx.scheduler is not None:
        try:
            job = ctx.scheduler.run_now("export")
        except NotFound:
            job = None
    if job is not None:
        result, error = job["last_result"], None if job["last_ok"] else job["last_error"]
    else:
        try:
            result = exports.run_export(ctx, wait=False)
        except exports.ExportBusy:
            raise
        except Exception as exc:
            error = exports.describe_error(exc)
    if error is not None:
        return json_response({"detail": f"export failed: {error}"}, status_code=502)
    return ExportRunOut(result=result, status=ExportStatusOut.model_validate(exports.export_status(ctx)))


@router.get("/status", response_model=ExportStatusOut)
def export_status(_: AdminUser, ctx: Ctx) -> ExportStatusOut:
    """The last export and compaction (ok or the error), files, rows and bytes per table, the target."""
    return ExportStatusOut.model_validate(exports.export_status(ctx))
