"""The server's background parts: the alert engine with its webhook dispatcher, and the scheduler.

The app's lifespan starts one `Runtime` after opening the store and stops it before closing the
store; the CLI and notebooks have none (they run jobs directly). It hooks into the Context only
through what the Context offers (listeners and the alert-evaluator port, see
analytics/alerts/lifecycle.py) and unhooks when it stops, so the Context stays the data plane.

Running a job on demand goes through here too: the scheduler's job when it has one (so a job
never runs twice at once, and its state shows the run), else the job's function directly.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from analytics import exports
from analytics.alerts.lifecycle import Alerts
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, StorageFull, StoreClosed, UpstreamFailed
from analytics.jobs.registry import default_jobs
from analytics.jobs.scheduler import Job, Scheduler
from analytics.openwebui.sync import OpenWebUISync
from analytics.retention import apply, runs

log = logging.getLogger("flowhistory")

EXPORT_JOB = "export"
RETENTION_JOB = "retention"


class ExportRun(TypedDict):
    result: dict[str, Any] | None
    status: dict[str, Any]  # analytics.exports.export_status after the cycle


class RetentionRun(TypedDict):
    ran: bool  # false: still running as the scheduler's job (poll the job or the status)
    result: dict[str, Any] | None
    job: dict[str, Any] | None  # the scheduler job's state, when it ran as one


class RetentionStatus(TypedDict):
    running: str | None  # what this process runs now: retention, compact or restore
    job: dict[str, Any] | None
    last: runs.RunRecord | None


class Runtime:
    def __init__(
        self, ctx: Context, alerts: Alerts, scheduler: Scheduler, openwebui: OpenWebUISync | None = None
    ) -> None:
        self.ctx = ctx
        self.alerts = alerts
        self.scheduler = scheduler
        self.openwebui = openwebui

    @classmethod
    def start(cls, ctx: Context, *, jobs: list[Job] | None = None) -> Runtime:
        """Alerts first (the scheduler's `alerts` job evaluates through them), then the
        scheduler with `jobs` (default: every registered job), started unless
        `scheduler_enabled` is off (jobs then run on demand only). In Open WebUI mode its
        poller starts first, after one synchronous sync: users and flows are Open WebUI's from
        the first request on."""
        openwebui = OpenWebUISync(ctx).start() if ctx.settings.openwebui_db else None
        try:
            alerts = Alerts.start(ctx)
        except BaseException:
            if openwebui is not None:
                openwebui.stop()
            raise
        try:
            scheduler = Scheduler(
                ctx, default_jobs(ctx) if jobs is None else jobs, status_file=ctx.settings.jobs_status_file
            )
            if ctx.settings.scheduler_enabled:
                scheduler.start()
        except BaseException:
            alerts.stop()
            if openwebui is not None:
                openwebui.stop()
            raise
        return cls(ctx, alerts, scheduler, openwebui)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Let running jobs finish (up to `timeout` seconds), then stop alerting; the Context is
        left as it was before `start`."""
        try:
            self.scheduler.stop(timeout)
        finally:
            try:
                self.alerts.stop()
            finally:
                if self.openwebui is not None:
                    self.openwebui.stop()

    # -- jobs --------------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        return self.scheduler.status()

    def job(self, name: str) -> dict[str, Any]:
        """NotFound for a name the scheduler does not have."""
        return self.scheduler.job_status(name)

    def run_job(self, name: str, *, wait: bool = False) -> dict[str, Any]:
        """Start a job now (Conflict if it runs); its state, finished when `wait`."""
        return self.scheduler.run_now(name, wait=wait)

    # -- exports -----------------------------------------------------------------------------

    def run_export(self) -> ExportRun:
        """One export cycle now, waited for: Conflict if one is running, UpstreamFailed when
        the target failed (the error is also in the export status)."""
        ctx = self.ctx
        if self.scheduler.has(EXPORT_JOB):
            state = self.scheduler.run_now(EXPORT_JOB, wait=True)
            if not state["last_ok"]:
                if isinstance(error := self.scheduler.last_error(EXPORT_JOB), StorageFull | StoreClosed):
                    raise error  # no room, or a store that takes no writes: not the target's fault
                raise UpstreamFailed(f"export failed: {state['last_error']}")
            result = state["last_result"]
        else:
            try:
                result = exports.run_export(ctx, wait=False)
            except (exports.ExportBusy, StorageFull, StoreClosed):
                raise
            except Exception as exc:
                raise UpstreamFailed(f"export failed: {exports.describe_error(exc)}") from exc
        return ExportRun(result=result, status=exports.export_status(ctx))

    # -- retention ---------------------------------------------------------------------------

    def run_retention(self, *, wait: bool = True) -> RetentionRun:
        """A retention pass now: as the scheduler's job (Conflict if it runs; without `wait`
        answered at once with the job's state), else here."""
        if self.scheduler.has(RETENTION_JOB):
            state = self.scheduler.run_now(RETENTION_JOB, wait=wait)
            failed = self.scheduler.last_error(RETENTION_JOB) if wait else None
            if isinstance(failed, FlowHistoryError):  # a full archive disk: its 507, not a 200
                raise failed
            if failed is not None:
                raise RuntimeError(f"the retention pass failed: {state['last_error']}") from failed
            return RetentionRun(ran=not state["running"], result=state.get("last_result"), job=state)
        return RetentionRun(ran=True, result=apply.run_retention(self.ctx, trigger="api"), job=None)

    def retention_status(self) -> RetentionStatus:
        job = self.scheduler.job_status(RETENTION_JOB) if self.scheduler.has(RETENTION_JOB) else None
        last = runs.list_runs(self.ctx, limit=1)
        return RetentionStatus(running=runs.running(), job=job, last=last[0] if last else None)
