"""Parquet exports: run a cycle now, and its status (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from analytics import exports
from api.dependencies import AdminUser, Ctx, ServerRuntime
from api.json_body import JsonRoute
from api.schemas.exports import ExportRunOut, ExportStatusOut

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], route_class=JsonRoute)


@router.post("/run", response_model=ExportRunOut, responses={409: {}, 502: {}})
def run_export(_: AdminUser, runtime: ServerRuntime) -> ExportRunOut:
    """Run one export cycle now (the scheduler's `export` job) and wait for it: 409 if it is
    already running, 502 when the target failed."""
    return ExportRunOut.model_validate(runtime.run_export())


@router.get("/status", response_model=ExportStatusOut)
def export_status(_: AdminUser, ctx: Ctx) -> ExportStatusOut:
    """The last export and compaction (ok or the error), files, rows and bytes per table, the target."""
    return ExportStatusOut.model_validate(exports.export_status(ctx))
