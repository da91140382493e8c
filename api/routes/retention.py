"""Retention: policies (global: admins; a flow's: its owner or admins), dry runs, passes, restore."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analytics.access.permissions import Viewer
from analytics.retention import apply, plan, policies, restore, runs
from api.dependencies import AdminUser, Ctx, CurrentUser, ServerRuntime
from api.json_body import JsonRoute
from api.schemas.retention import (
    DryRunIn,
    PlanOut,
    PolicyIn,
    PolicyOut,
    RestoreIn,
    RunRecordOut,
    RunStarted,
    StatusOut,
)

router = APIRouter(prefix="/api/v1", tags=["retention"], route_class=JsonRoute)
_BUSY: dict[int | str, dict[str, Any]] = {
    409: {"description": "A retention pass, compaction or restore is running"}
}


def _out(ctx: Ctx, viewer: Viewer, flow_id: str | None) -> PolicyOut:
    stored = policies.get_policy(ctx, viewer, flow_id)
    if stored is None:
        return PolicyOut(flow_id=flow_id, updated_by=None, updated_at=None, inherited=flow_id is not None)
    return PolicyOut(
        **stored.policy.as_dict(),
        flow_id=flow_id,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        inherited=False,
    )


@router.get("/retention/policy", response_model=PolicyOut)
def get_global_policy(viewer: AdminUser, ctx: Ctx) -> PolicyOut:
    """The global policy (every flow without its own)."""
    return _out(ctx, viewer, None)


@router.put("/retention/policy", response_model=PolicyOut)
def put_global_policy(body: PolicyIn, viewer: AdminUser, ctx: Ctx) -> PolicyOut:
    policies.set_policy(ctx, viewer, body.to_policy())
    return _out(ctx, viewer, None)


@router.get("/flows/{flow_id}/retention/policy", response_model=PolicyOut)
def get_flow_policy(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> PolicyOut:
    """The flow's own policy; `inherited: true` (and no rules) when the global one applies."""
    return _out(ctx, viewer, flow_id)


@router.put("/flows/{flow_id}/retention/policy", response_model=PolicyOut)
def put_flow_policy(flow_id: str, body: PolicyIn, viewer: CurrentUser, ctx: Ctx) -> PolicyOut:
    policies.set_policy(ctx, viewer, body.to_policy(), flow_id)
    return _out(ctx, viewer, flow_id)


@router.delete("/flows/{flow_id}/retention/policy")
def delete_flow_policy(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """The flow follows the global policy again."""
    return policies.delete_policy(ctx, viewer, flow_id)


def _dry_run(ctx: Ctx, viewer: Viewer, body: DryRunIn | None, flow_id: str | None) -> PlanOut:
    body = body or DryRunIn()
    candidate = body.policy.to_policy() if body.policy else None
    result = plan.dry_run(
        ctx, viewer, flow_id=flow_id, candidate=candidate, now=body.now, ids_limit=body.ids_limit
    )
    return PlanOut.model_validate(result)


@router.post("/retention/dry-run", response_model=PlanOut)
def dry_run(viewer: AdminUser, ctx: Ctx, body: DryRunIn | None = None) -> PlanOut:
    """What a pass would delete and trim now, in every flow: counts and ids (nothing changes)."""
    return _dry_run(ctx, viewer, body, None)


@router.post("/flows/{flow_id}/retention/dry-run", response_model=PlanOut)
def flow_dry_run(flow_id: str, viewer: CurrentUser, ctx: Ctx, body: DryRunIn | None = None) -> PlanOut:
    """The same for one flow (its owner or admins)."""
    return _dry_run(ctx, viewer, body, flow_id)


@router.post("/retention/run", response_model=RunStarted, responses=_BUSY)
def run(_: AdminUser, runtime: ServerRuntime, wait: bool = True) -> RunStarted:
    """Run a pass now as the scheduler's `retention` job (409 if it is running). With
    `wait=false` the job's state is answered at once (poll status)."""
    return RunStarted.model_validate(runtime.run_retention(wait=wait))


@router.post("/retention/compact", response_model=dict, responses=_BUSY)
def compact(_: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Rewrite the executions table now so the file gives space back (409 while a pass runs)."""
    return apply.compact_now(ctx, trigger="api")


@router.post("/retention/restore", response_model=dict, responses=_BUSY)
def restore_runs(body: RestoreIn, _: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Bring archived runs of [start, end) back (optionally one flow); present ids are skipped."""
    return restore.restore(ctx, start=body.start, end=body.end, flow_id=body.flow_id, trigger="api")


@router.get("/retention/runs", response_model=list[RunRecordOut])
def list_runs(
    _: AdminUser,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    kind: Annotated[str | None, Query(pattern="^(retention|compact|restore)$")] = None,
) -> list[RunRecordOut]:
    """Passes, compactions and restores, newest first, with what each did or its error."""
    return [RunRecordOut.model_validate(r) for r in runs.list_runs(ctx, limit=limit, kind=kind)]


@router.get("/retention/status", response_model=StatusOut)
def status(_: AdminUser, runtime: ServerRuntime) -> StatusOut:
    """What runs now, the scheduler's `retention` job, and the last pass, compaction or restore."""
    return StatusOut.model_validate(runtime.retention_status())
