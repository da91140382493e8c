"""The scheduler's jobs (exports, compaction, retention, alerts): their state, and run-now."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from api.dependencies import AdminUser, Ctx
from api.json_body import JsonRoute
from api.schemas.jobs import JobOut

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=JsonRoute)

JobName = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")


@router.get("", response_model=list[JobOut])
def list_jobs(_: AdminUser, ctx: Ctx) -> list[JobOut]:
    """Every job with its last run (duration, result or error) and its next run."""
    return [JobOut.model_validate(s) for s in ctx.scheduler.status()]


@router.get("/{name}", response_model=JobOut)
def get_job(_: AdminUser, ctx: Ctx, name: str = JobName) -> JobOut:
    return JobOut.model_validate(ctx.scheduler.job_status(name))


@router.post(
    "/{name}/run",
    response_model=JobOut,
    responses={
        202: {"model": JobOut, "description": "Started and still running: poll GET /jobs/{name}"},
        409: {"description": "That job is already running, or the scheduler is stopping"},
    },
)
def run_job(_: AdminUser, ctx: Ctx, response: Response, name: str = JobName, wait: bool = False) -> JobOut:
    """Start a job now: 202 while it runs (poll GET), or with `wait=true` its finished state.

    409 if that job is already running: one copy of a job at a time.
    """
    state = ctx.scheduler.run_now(name, wait=wait)
    response.status_code = 200 if not state["running"] else 202
    return JobOut.model_validate(state)
