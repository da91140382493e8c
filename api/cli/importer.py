"""`flowhistory import openwebui --from URL`: move Open WebUI's history in, with a progress bar.

With the store free it imports directly; while a server holds it, the same import runs inside
the server, a few chunks per request (asked as every remote command asks: api/cli/remote.py),
so the bar still moves.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from analytics.core.context import open_context
from analytics.core.errors import FlowHistoryError, StoreLocked
from analytics.openwebui import importer
from api.cli import remote
from api.cli.common import DbOption, Typer, console, err, error, fail, settings_for

app = Typer(help="Move history in from another system.", no_args_is_help=True)

ReportOption = Annotated[
    Path,
    typer.Option("--report", help="Where every skipped or altered run id is listed with its reason (JSONL)"),
]


def _bar() -> Progress:
    return Progress(
        TextColumn("importing runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@app.command("openwebui")
def openwebui(
    source: Annotated[
        str,
        typer.Option("--from", help="Open WebUI's database: sqlite:////path/webui.db or postgresql://..."),
    ],
    db: DbOption = None,
    report: ReportOption = Path("openwebui-import-report.jsonl"),
    server: Annotated[
        str | None,
        typer.Option(help="The running server's URL (default: where it says it answers, else HOST:PORT)"),
    ] = None,
) -> None:
    """Copy Open WebUI's users, groups, flows and runs; safe to rerun, resumes where it stopped."""
    settings = settings_for(db)
    try:
        ctx = open_context(settings)
    except StoreLocked as exc:
        if server is None and not _server_running(settings):
            error(
                f"another process holds the store (another import, or a command still running), "
                f"and no server is running for it: wait for it to finish, then run this again ({exc})"
            )
            raise typer.Exit(2) from exc
        summary = _through_server(server or remote.server_url(settings), settings, source)
    except FlowHistoryError as exc:
        fail(exc, 2)
    else:
        try:
            with _bar() as bar:
                task = bar.add_task("runs", total=None)
                summary_obj = importer.import_openwebui(
                    ctx,
                    source,
                    on_progress=lambda done, total: bar.update(task, completed=min(done, total), total=total),
                )
            summary = asdict(summary_obj)
        except FlowHistoryError as exc:
            fail(exc, 1)
        finally:
            ctx.close()
    importer.write_report(report, summary["issues"])
    _print(summary, report)


def _server_running(settings: Any) -> bool:
    """A server wrote its address beside the store and is alive: it, not another import or
    command, is what holds the store (serve writes server.json once it binds)."""
    try:
        found = json.loads(remote.server_file(settings).read_text())
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


_SUMMED = ("users", "groups", "flows", "runs_read", "runs_stored", "runs_already_there", "runs_skipped",
           "runs_altered")  # fmt: skip


def add_step(totals: dict[str, int], step: dict[str, Any]) -> tuple[int, int]:
    """Add one server step's counts to `totals` (each step reports only its own: the users,
    groups and flows come in the first one), and the bar's (done, total): what the source holds
    read so far, never past the total (two imports at once both count the rows they read)."""
    for k in _SUMMED:
        totals[k] = totals.get(k, 0) + int(step[k])
    total = int(step["total_in_source"])
    return min(int(step["total_read"]), total), total


def _through_server(base: str, settings: Any, source: str) -> dict[str, Any]:
    """With the admin key and the client every remote command uses (api/cli/remote.py):
    FLOWHISTORY_API_KEY, else the key file (in Open WebUI mode there is no key file: an Open
    WebUI admin's API key, or a flowhistory key)."""
    try:
        remote.admin_key(settings)  # none to ask with: exit 2, before anything is sent
    except remote.RemoteError as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    totals: dict[str, int] = {}
    console.print(Text(f"the store is held by the server at {base}: importing through it"))
    try:
        with remote.connect(settings, base) as api, _bar() as bar:
            task = bar.add_task("runs", total=None)
            while True:
                step = api.post("/api/v1/executions/import/openwebui", json={"from": source, "max_chunks": 2})
                done, total = add_step(totals, step)
                bar.update(task, completed=done, total=total)
                if step["finished"]:
                    return {**step, **totals}
    except remote.RemoteError as exc:
        if isinstance(exc.__cause__, httpx.TransportError):  # it stopped, or was never there
            error(
                f"no answer from the server at {base} ({exc.__cause__}); what it imported is kept "
                "(each step commits): run the command again to resume"
            )
        else:  # the server's reason, readable: `from: String should have at least 1 character`
            error(str(exc))
        raise typer.Exit(1) from exc


def _print(summary: dict[str, Any], report: Path) -> None:
    console.print(
        f"users {summary['users']}, groups {summary['groups']}, flows {summary['flows']} new; runs: "
        f"{summary['runs_stored']} stored, {summary['runs_already_there']} already there, "
        f"{summary['runs_skipped']} skipped, {summary['runs_altered']} altered "
        f"({summary['total_stored']} of {summary['total_in_source']} in Open WebUI stored so far)"
    )
    console.print(Text(f"{len(summary['issues'])} skipped or altered ids listed in {report}"))
