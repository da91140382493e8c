"""The scheduler's jobs (exports, compaction, retention, alerts): their state, and run-now."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api.dependencies import AdminUser, ServerRuntime
from api.json_body import JsonRoute
from api.schemas.jobs import JobOut

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=JsonRoute)

JobName = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")


@router.get("", response_model=list[JobOut])
def list_jobs(_: AdminUser, runtime: ServerRuntime) -> list[JobOut]:
    """Every job with its last run (duration, result or error) and its next run."""
    return [JobOut.model_validate(s) for s in runtime.jobs()]


@router.get("/{name}", response_model=JobOut)
def get_job(_: AdminUser, runtime: ServerRuntime, name: str = JobName) -> JobOut:
    return JobOut.model_validate(runtime.job(name))


@router.post(
    "/{name}/run",
    response_model=JobOut,
    responses={409: {"description": "That job is already running, or the scheduler is stopping"}},
)
def run_job(_: AdminUser, runtime: ServerRuntime, name: str = JobName, wait: bool = False) -> JobOut:
    """Start a job now and answer its state: `running: true` while it runs (poll GET
    /jobs/{name}), or with `wait=true` its finished state. 409 if that job is already running:
    one copy of a job at a time."""
    return JobOut.model_validate(runtime.run_job(name, wait=wait))
