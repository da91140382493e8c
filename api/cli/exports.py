"""`flowhistory export ...`: Parquet exports (analytics/exports, docs/exports.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError
from api.cli.common import DbOption, Typer, console, err, error, json_of, on_store, one_line
from api.cli.remote import Remote, RemoteError
from api.schemas.exports import ExportStatusOut

app = Typer(help="Parquet exports: run a cycle, compact, status.", no_args_is_help=True)


def _export_status_table(status: dict[str, Any]) -> None:
    table = Table("table", "partitions", "files", "rows", "bytes", "most files in a partition")
    for name, t in sorted(status["tables"].items()):
        rows = t.get("rows")
        cells = (
            name,
            str(t.get("partitions", "")),
            str(t.get("files", "")),
            "" if rows is None else f"{rows:,}",
            f"{t.get('bytes', 0):,}",
            str(t.get("max_files_per_partition", "")),
        )
        table.add_row(*map(Text, cells))
    console.print(table)


def _failed(label: str, detail: str) -> NoReturn:
    error(detail, f"{label} failed")
    err.print("the store is untouched; the next cycle retries (see `flowhistory export status`)")
    raise typer.Exit(1)


@app.command("run")
def export_run(db: DbOption = None) -> None:
    """Run one export cycle now (new runs, changed and deleted days), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from analytics import exports

    def local(ctx: Context) -> dict[str, Any]:
        with Progress(
            TextColumn("[bold]export[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
        ) as bar:
            task = bar.add_task("listing", total=None)

            def progress(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, total=total, description=label)

            try:
                summary = exports.run_export(ctx, progress=progress)
            except FlowHistoryError:
                raise
            except Exception as exc:
                _failed("export", exports.describe_error(exc))
        return {"result": summary, "status": json_of(ExportStatusOut, exports.export_status(ctx))}

    def remote(api: Remote) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = api.post("/api/v1/exports/run")
            return answer
        except RemoteError as exc:  # the server's answer names the target's failure
            _failed("export", str(exc))

    out = on_store(db, local, remote)
    summary, written = out["result"], out["result"]["rows_written"]
    console.print(
        Text(
            f"exported to {summary['target']} in {summary['duration_s']:.2f}s: "
            f"{written['executions']:,} runs and {written['execution_nodes']:,} node rows written; days "
            f"new {summary['days_written']}, appended {summary['days_appended']}, "
            f"rewritten {summary['days_rewritten']}, dropped {summary['days_dropped']}"
        )
    )
    _export_status_table(out["status"])


@app.command("compact")
def export_compact(db: DbOption = None) -> None:
    """Merge partitions holding more than FLOWHISTORY_EXPORT_MAX_FILES_PER_PARTITION files."""
    from analytics import exports

    def local(ctx: Context) -> dict[str, Any]:
        try:
            return exports.compact(ctx)
        except FlowHistoryError:
            raise
        except Exception as exc:
            _failed("compaction", exports.describe_error(exc))

    def remote(api: Remote) -> dict[str, Any]:  # the server's `export-compaction` job, waited for
        state = api.post("/api/v1/jobs/export-compaction/run", params={"wait": "true"})
        if not state["last_ok"]:
            _failed("compaction", str(state["last_error"]))
        answer: dict[str, Any] = state["last_result"]
        return answer

    result = on_store(db, local, remote)
    console.print(f"compacted partitions: {json.dumps(result['partitions_compacted'])}")


@app.command("status")
def export_status_command(
    db: DbOption = None, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
) -> None:
    """The last export (exit 1 when it failed, with its error), compaction and per-table totals."""
    from analytics import exports

    def local(ctx: Context) -> dict[str, Any]:
        try:
            found: dict[str, Any] = json_of(ExportStatusOut, exports.export_status(ctx))
            return found
        except FlowHistoryError:
            raise
        except Exception as exc:  # the target cannot be opened (S3 keys half given: pyarrow's ValueError)
            error(f"cannot read the export's status: {exports.describe_error(exc)}")
            raise typer.Exit(1) from exc

    status = on_store(db, local, lambda api: api.get("/api/v1/exports/status"))
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        console.print(Text(f"target: {status['target']} (export schema version {status['schema_version']})"))
        last, ok = status["last_cycle"], status["last_ok_cycle"]
        if last is None:
            console.print("no export has run yet")
        elif last["ok"]:
            console.print(f"last export: ok, {last['finished_at']} ({last['duration_s']:.2f}s)")
        else:
            err.print(
                f"[red]last export failed[/red] at {last['finished_at']} "
                f"({status['failures_since_ok']} failures since the last success): "
                f"{escape(one_line(str(status['error'])))}"
            )
            console.print(f"last successful export: {ok['finished_at'] if ok else 'never'}")
        if status["last_compaction"]:
            c = status["last_compaction"]
            console.print(
                Text(
                    f"last compaction: {'ok' if c['ok'] else 'failed: ' + str(c['error'])}, {c['finished_at']}"
                )
            )
        _export_status_table(status)
    if status["ok"] is False:
        raise typer.Exit(1)
