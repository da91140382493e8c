"""`flowhistory jobs [run NAME]`: the scheduler's state, and running a job without the server."""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from analytics.core.context import Context
from analytics.jobs.registry import default_jobs
from analytics.jobs.scheduler import Scheduler, read_status_file
from api.cli.common import (
    DbOption,
    Typer,
    console,
    error,
    json_of,
    on_store,
    refuse_missing_store,
    settings_for,
)
from api.schemas.jobs import JobOut

app = Typer(help="The scheduler's jobs (exports, compaction, retention, alerts).")


@app.callback(invoke_without_command=True)
def jobs_list(typer_ctx: typer.Context, db: DbOption = None) -> None:
    """Show each job's last run and next run, as the server (or the last `jobs run`) recorded it."""
    if typer_ctx.invoked_subcommand is not None:
        return
    settings = settings_for(db)
    try:
        saved = read_status_file(settings.jobs_status_file)
        if saved is None:
            console.print(Text(f"no job has run yet ({settings.jobs_status_file} does not exist)"))
            return
        rows = [_row(job) for job in saved["jobs"]]
        written_at = str(saved["written_at"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not what a server writes
        error(
            f"{settings.jobs_status_file} is not a job status a server wrote ({type(exc).__name__}: "
            f"{exc}); the server rewrites it when it starts"
        )
        raise typer.Exit(1) from exc
    table = Table("job", "every", "running", "last run", "took", "result", "next run")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(Text(f"(as of {written_at}, from {settings.jobs_status_file})"))


def _row(job: dict[str, Any]) -> list[Text]:
    """One job's cells, as text: an error's `[...]` is not markup."""
    failed = job["last_ok"] is False
    return [
        Text(job["name"]),
        Text(f"{job['every_s']:g}s" if job["every_s"] > 0 else "on demand"),
        Text("yes" if job["running"] else ""),
        Text(job["last_finished"] or "never"),
        Text(f"{job['last_duration_s']:.2f}s" if job["last_duration_s"] is not None else ""),
        Text(job["last_error"] or json.dumps(job["last_result"]), style="red" if failed else ""),
        Text(job["next_run"] or ""),
    ]


class _SettingsOnly:
    """What default_jobs reads of a context: its settings (to name the jobs without a store)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings


@app.command("run")
def jobs_run(name: str, db: DbOption = None) -> None:
    """Run one job now and wait for it (the running server's job, through its API, when one serves)."""
    settings = settings_for(db)
    if not settings.db_path.exists():  # an unknown name first, as with a store; then the missing store
        known = sorted(job.name for job in default_jobs(cast(Context, _SettingsOnly(settings))))
        if name not in known:
            error(f"no job named {name!r}; jobs: {', '.join(known)}")
            raise typer.Exit(1)
        refuse_missing_store(settings)

    def local(ctx: Context) -> dict[str, Any]:
        scheduler = Scheduler(ctx, default_jobs(ctx), status_file=ctx.settings.jobs_status_file)
        state: dict[str, Any] = json_of(JobOut, scheduler.run_now(name, wait=True, trigger="cli"))
        return state

    state = on_store(
        db, local, lambda api: api.post(f"/api/v1/jobs/{quote(name, safe='')}/run", params={"wait": "true"})
    )
    if state["last_ok"]:
        console.print(
            Text(f"{name}: done in {state['last_duration_s']:.2f}s: {json.dumps(state['last_result'])}")
        )
    else:
        error(str(state["last_error"]), f"{name} failed")
        raise typer.Exit(1)
