"""The `flowhistory` command: serve, migrations, users, keys, groups, tokens, cleanup.

Commands other than `serve` open the store directly. A running server holds the file (DuckDB
allows one process per store), so they then stop with a message saying so: use the server's
HTTP API instead, or stop it first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup, TyperOption

from analytics.access import users
from analytics.access.auth import create_token, load_secret
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import FlowHistoryError
from analytics.history import runs as history
from analytics.jobs.registry import default_jobs
from analytics.jobs.scheduler import Scheduler, read_status_file


class _FlagsTakeNoValue:
    """Typer prints a type beside every flag, `--json <bool>` (and `--help <bool>`), as if it
    wanted a value: a flag gets an empty metavar, so help shows the type only where one is due."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsTakeNoValue, TyperCommand):
    pass


class _Group(_FlagsTakeNoValue, TyperGroup):
    pass


class _Typer(typer.Typer):
    """A Typer whose groups and commands show flags without a type (see _FlagsTakeNoValue)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _Typer(help="flowhistory: execution history and analytics for AI flows.", no_args_is_help=True)
db_app = _Typer(help="Schema migrations.", no_args_is_help=True)
users_app = _Typer(help="Users and roles.", no_args_is_help=True)
keys_app = _Typer(help="API keys.", no_args_is_help=True)
groups_app = _Typer(help="Groups for flow access grants.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(groups_app, name="groups")

console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Store file (default: FLOWHISTORY_DB_PATH or data/flowhistory.duckdb)"),
]


def _settings(db: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"db_path": db}) if db else settings


@contextmanager
def _open(db: Path | None, *, migrate: bool = True) -> Iterator[Context]:
    try:
        ctx = open_context(_settings(db), migrate=migrate)
    except FlowHistoryError as exc:
        err.print(f"[red]error:[/red] {escape(exc.detail)}")
        raise typer.Exit(2) from exc
    try:
        yield ctx
    except FlowHistoryError as exc:
        err.print(f"[red]error:[/red] {escape(exc.detail)}")
        raise typer.Exit(1) from exc
    finally:
        ctx.close()


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
) -> None:
    """Start the server (one process, one worker: it owns the store)."""
    import uvicorn

    from api.app import create_app

    settings = _settings(db)
    settings = settings.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    with _open(settings.db_path):  # fail fast and quietly if another process holds the store
        pass
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_level="warning")


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = None, to: Annotated[int | None, typer.Option(help="Target version")] = None
) -> None:
    """Apply migrations up to head (or --to)."""
    with _open(db, migrate=False) as ctx:
        applied = migrations.upgrade(ctx.store, to)
        for m in applied:
            console.print(f"applied {m.version:04d} {m.name}")
        console.print(f"current: {migrations.current(ctx.store)}")


@db_app.command("downgrade")
def db_downgrade(
    db: DbOption = None, steps: Annotated[int, typer.Option(help="How many to undo")] = 1
) -> None:
    """Undo the newest migration(s). Dropping a table drops its data."""
    with _open(db, migrate=False) as ctx:
        for m in migrations.downgrade(ctx.store, steps):
            console.print(f"reverted {m.version:04d} {m.name}")
        console.print(f"current: {migrations.current(ctx.store)}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema version of the store, and head."""
    with _open(db, migrate=False) as ctx:
        console.print(f"current: {migrations.current(ctx.store)} (head: {migrations.head()})")


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List users."""
    with _open(db) as ctx:
        table = Table("id", "role", "name", "email")
        for u in users.list_users(ctx):
            table.add_row(u.id, u.role, u.name or "", u.email or "")
        console.print(table)


@users_app.command("create")
def users_create(
    user_id: str,
    db: DbOption = None,
    role: Annotated[str, typer.Option(help="admin, user or pending")] = "user",
    name: str | None = None,
) -> None:
    """Create a user."""
    with _open(db) as ctx:
        users.create_user(ctx, user_id, role=role, name=name)
        console.print(f"created {user_id} ({role})")


@users_app.command("set-role")
def users_set_role(user_id: str, role: str, db: DbOption = None) -> None:
    """Make a user admin, user or pending."""
    with _open(db) as ctx:
        users.set_role(ctx, user_id, role)
        console.print(f"{user_id} is now {role}")


@keys_app.command("create")
def keys_create(
    user_id: str, db: DbOption = None, name: Annotated[str | None, typer.Option(help="A label")] = None
) -> None:
    """Create an API key for a user; it is printed once and stored only as a hash."""
    with _open(db) as ctx:
        key, record = users.create_api_key(ctx, user_id, name=name)
        err.print(f"API key {record.id} for {user_id} (shown once):")
        typer.echo(key)


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    with _open(db) as ctx:
        table = Table("user", "prefix", "name", "created")
        table.add_column("id", no_wrap=True, min_width=32)
        for k in users.list_api_keys(ctx):
            table.add_row(k.user_id, k.prefix + "…", k.name or "", str(k.created_at), k.id)
        console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: DbOption = None) -> None:
    """Revoke an API key."""
    with _open(db) as ctx:
        users.revoke_api_key(ctx, key_id)
        console.print(f"revoked {key_id}")


@groups_app.command("create")
def groups_create(
    name: str,
    db: DbOption = None,
    member: Annotated[list[str] | None, typer.Option("--member", help="A user id; repeat")] = None,
) -> None:
    """Create a group."""
    with _open(db) as ctx:
        group = users.create_group(ctx, name, user_ids=member or [])
        console.print(f"created group {group.id} ({name})")


@groups_app.command("list")
def groups_list(db: DbOption = None) -> None:
    """List groups and their members."""
    with _open(db) as ctx:
        table = Table("name", "members")
        table.add_column("id", no_wrap=True, min_width=32)
        for g in users.list_groups(ctx):
            table.add_row(g.name, ", ".join(g.user_ids), g.id)
        console.print(table)


@groups_app.command("set-members")
def groups_set_members(group_id: str, user_ids: list[str], db: DbOption = None) -> None:
    """Replace a group's members."""
    with _open(db) as ctx:
        users.set_group_members(ctx, group_id, user_ids)
        console.print(f"group {group_id}: {', '.join(user_ids)}")


TOKEN_LIFETIME_S = 30 * 86_400  # a JWT cannot be revoked: it should not outlive its purpose


@app.command()
def token(
    user_id: str,
    db: DbOption = None,
    expires_in: Annotated[
        int, typer.Option(help="Seconds until it expires (default 30 days); must be positive")
    ] = TOKEN_LIFETIME_S,
) -> None:
    """Mint an Open WebUI-style JWT for a user, signed with WEBUI_SECRET_KEY; it expires.

    A JWT cannot be revoked, so there are no never-expiring ones: for a lasting credential
    create an API key (`flowhistory keys create USER`), which `keys revoke` can withdraw.
    """
    if expires_in <= 0:
        err.print(
            f"[red]error:[/red] --expires-in must be a positive number of seconds (got {expires_in}); "
            "for a credential that does not expire create an API key: `flowhistory keys create USER`"
        )
        raise typer.Exit(2)
    typer.echo(create_token(load_secret(_settings(db)), user_id, expires_in=expires_in))


@app.command()
def cleanup(
    flow_id: str,
    db: DbOption = None,
    keep: Annotated[int, typer.Option(help="How many of the newest runs to keep")] = 50,
) -> None:
    """Keep only the newest N executions of a flow."""
    with _open(db) as ctx:
        if ctx.directory.flow(flow_id) is None:
            err.print(
                f"[red]error:[/red] unknown flow {escape(flow_id)}: no flow has this id; nothing deleted"
            )
            raise typer.Exit(1)
        deleted = history.delete_old_executions_by_flow_id(ctx, flow_id, keep)
        console.print(f"deleted {deleted} executions of {escape(flow_id)}")


# -- jobs: the scheduler's state, and running a job without the server ---------------------

jobs_app = _Typer(help="The scheduler's jobs (exports, compaction, retention, alerts).")
app.add_typer(jobs_app, name="jobs")


@jobs_app.callback(invoke_without_command=True)
def jobs_list(typer_ctx: typer.Context, db: DbOption = None) -> None:
    """Show each job's last run and next run, as the server (or the last `jobs run`) recorded it."""
    if typer_ctx.invoked_subcommand is not None:
        return
    settings = _settings(db)
    saved = read_status_file(settings.jobs_status_file)
    if saved is None:
        console.print(f"no job has run yet ({settings.jobs_status_file} does not exist)")
        return
    table = Table("job", "every", "running", "last run", "took", "result", "next run")
    for job in saved["jobs"]:
        outcome = job["last_error"] or json.dumps(job["last_result"])
        if job["last_ok"] is False:
            outcome = f"[red]{outcome}[/red]"
        table.add_row(
            job["name"],
            f"{job['every_s']:g}s" if job["every_s"] > 0 else "on demand",
            "yes" if job["running"] else "",
            job["last_finished"] or "never",
            f"{job['last_duration_s']:.2f}s" if job["last_duration_s"] is not None else "",
            outcome,
            job["next_run"] or "",
        )
    console.print(table)
    console.print(f"(as of {saved['written_at']}, from {settings.jobs_status_file})")


@jobs_app.command("run")
def jobs_run(name: str, db: DbOption = None) -> None:
    """Run one job now on the store (the server must not be running: use its API instead)."""
    with _open(db) as ctx:
        scheduler = Scheduler(ctx, default_jobs(ctx), status_file=ctx.settings.jobs_status_file)
        state = scheduler.run_now(name, wait=True)
    if state["last_ok"]:
        console.print(f"{name}: done in {state['last_duration_s']:.2f}s: {json.dumps(state['last_result'])}")
    else:
        err.print(f"[red]{name} failed:[/red] {escape(str(state['last_error']))}")
        raise typer.Exit(1)


# -- ad-hoc SQL over the export (analytics/exports/sql_sandbox.py) ----------------------------------------

_SQL_OUTPUTS = {".csv": "csv", ".parquet": "parquet", ".json": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _counting(batches: Iterable[Any], counter: list[int]) -> Iterator[Any]:
    for batch in batches:
        counter[0] += batch.num_rows
        yield batch


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="one DuckDB SELECT; views executions, execution_nodes, flows")],
    export: Annotated[
        Path | None,
        typer.Option("--export", help="export folder (default: FLOWHISTORY_EXPORT_URL or data/exports)"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write every row to FILE.csv, .parquet or .json (JSON Lines)"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="rows at most (default: 1000 printed, all written)")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="stop the query after this many seconds")] = 600.0,
) -> None:
    """Run SQL over the Parquet export in a read-only sandbox; no server or store needed."""
    import os

    from analytics.core.batch_formats import Format, encode
    from analytics.exports import sql_sandbox

    settings = Settings()
    limits = sql_sandbox.limits_from(settings)
    try:
        root = export or sql_sandbox.export_root(settings)
        if output is None:
            result = sql_sandbox.run_sql(root, query, limit=limit or 1000, timeout_s=timeout, limits=limits)
            table = Table(*(f"{c.name}\n[dim]{c.type}[/dim]" for c in result.columns))
            for row in zip(*(col.to_pylist() for col in result.table.columns), strict=True):
                table.add_row(*("" if v is None else str(v) for v in row))
            console.print(table)
            more = f", truncated at --limit {limit or 1000}" if result.truncated else ""
            err.print(f"{result.row_count} rows in {result.elapsed_ms:.0f} ms{more}")
            return
        kind = _SQL_OUTPUTS.get(output.suffix.lower())
        if kind is None:
            raise typer.BadParameter(f"--output must end in {', '.join(_SQL_OUTPUTS)}", param_hint="--output")
        fmt = Format(kind)
        partial = output.with_name(f".{output.name}.partial")  # a failed query leaves no half file
        counter = [0]
        with (
            sql_sandbox.sandbox(root, limits) as conn,
            sql_sandbox.query_reader(
                conn, query, timeout_s=timeout, limit=limit, json_lines=fmt is Format.JSONL
            ) as reader,
            partial.open("wb") as out,
        ):
            for chunk in encode(fmt, _counting(reader, counter), reader.schema):
                out.write(chunk)
        os.replace(partial, output)
        err.print(f"wrote {counter[0]} rows to {output}")
    except FlowHistoryError as exc:
        err.print(f"[red]error:[/red] {escape(exc.detail)}")
        raise typer.Exit(1) from exc
    finally:
        if output is not None:
            output.with_name(f".{output.name}.partial").unlink(missing_ok=True)


# -- Parquet exports (analytics/exports, docs/exports.md) ----------------------------------------

export_app = _Typer(help="Parquet exports: run a cycle, compact, status.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _export_status_table(status: dict[str, Any]) -> None:
    table = Table("table", "partitions", "files", "rows", "bytes", "most files in a partition")
    for name, t in sorted(status["tables"].items()):
        rows = t.get("rows")
        table.add_row(
            name,
            str(t.get("partitions", "")),
            str(t.get("files", "")),
            "" if rows is None else f"{rows:,}",
            f"{t.get('bytes', 0):,}",
            str(t.get("max_files_per_partition", "")),
        )
    console.print(table)


@export_app.command("run")
def export_run(db: DbOption = None) -> None:
    """Run one export cycle now (new runs, changed and deleted days), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from analytics import exports

    with _open(db) as ctx:
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
                err.print(f"[red]export failed:[/red] {escape(exports.describe_error(exc))}")
                err.print("the store is untouched; the next cycle retries (see `flowhistory export status`)")
                raise typer.Exit(1) from exc
        written = summary["rows_written"]
        console.print(
            f"exported to {summary['target']} in {summary['duration_s']:.2f}s: "
            f"{written['executions']:,} runs and {written['execution_nodes']:,} node rows written; days "
            f"new {summary['days_written']}, appended {summary['days_appended']}, "
            f"rewritten {summary['days_rewritten']}, dropped {summary['days_dropped']}"
        )
        _export_status_table(exports.export_status(ctx))


@export_app.command("compact")
def export_compact(db: DbOption = None) -> None:
    """Merge partitions holding more than FLOWHISTORY_EXPORT_MAX_FILES_PER_PARTITION files."""
    from analytics import exports

    with _open(db) as ctx:
        try:
            result = exports.compact(ctx)
        except FlowHistoryError:
            raise
        except Exception as exc:
            err.print(f"[red]compaction failed:[/red] {escape(exports.describe_error(exc))}")
            raise typer.Exit(1) from exc
        console.print(f"compacted partitions: {json.dumps(result['partitions_compacted'])}")


@export_app.command("status")
def export_status_command(
    db: DbOption = None, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
) -> None:
    """The last export (exit 1 when it failed, with its error), compaction and per-table totals."""
    from analytics import exports

    with _open(db) as ctx:
        status = exports.export_status(ctx)
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        console.print(f"target: {status['target']} (export schema version {status['schema_version']})")
        last, ok = status["last_cycle"], status["last_ok_cycle"]
        if last is None:
            console.print("no export has run yet")
        elif last["ok"]:
            console.print(f"last export: ok, {last['finished_at']} ({last['duration_s']:.2f}s)")
        else:
            err.print(
                f"[red]last export failed[/red] at {last['finished_at']} "
                f"({status['failures_since_ok']} failures since the last success): {status['error']}"
            )
            console.print(f"last successful export: {ok['finished_at'] if ok else 'never'}")
        if status["last_compaction"]:
            c = status["last_compaction"]
            console.print(f"last compaction: {'ok' if c['ok'] else 'failed: ' + str(c['error'])}, {c['finished_at']}")
        _export_status_table(status)
    if status["ok"] is False:
        raise typer.Exit(1)


# --- retention (analytics/retention; docs/retention.md) -------------------------------------

retention_app = _Typer(
    help="Retention: policies, dry run, a pass (archive, delete, trim, compact), restore.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
_CLI_ADMIN = "cli"  # the CLI runs as the store's operator: an admin


def _stage_bar() -> Any:
    """A rich progress bar with one task per stage (plan, archive, delete, trim, compact ...)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


def _reporter(bar: Any) -> Any:
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total or None)
        bar.update(tasks[stage], completed=done, total=total or done or None)

    return report


def _policy_from(
    max_age_days: float | None,
    failed_max_age_days: float | None,
    keep_last: int | None,
    payload_ttl_days: float | None,
    archive: bool,
) -> Any:
    from analytics.retention.policies import Policy

    return Policy(max_age_days, failed_max_age_days, keep_last, payload_ttl_days, archive)


MaxAge = Annotated[float | None, typer.Option(help="Delete successful runs older than this many days")]
FailedAge = Annotated[float | None, typer.Option(help="Delete error/aborted runs older than this (>= max-age)")]
KeepLast = Annotated[int | None, typer.Option(help="Keep at most the newest N runs of each flow")]
PayloadTtl = Annotated[float | None, typer.Option(help="Drop inputs/outputs/node_results after this many days")]
Archive = Annotated[bool, typer.Option(help="Archive to Parquet before deleting or trimming")]
FlowOpt = Annotated[str | None, typer.Option("--flow", help="A flow id (default: the global policy)")]


@retention_app.command("policy")
def retention_policy(
    db: DbOption = None,
    flow: FlowOpt = None,
    set_: Annotated[bool, typer.Option("--set", help="Replace the policy with the rules given")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove it (a flow then follows the global one)")] = False,
    max_age_days: MaxAge = None,
    failed_max_age_days: FailedAge = None,
    keep_last: KeepLast = None,
    payload_ttl_days: PayloadTtl = None,
    archive: Archive = True,
) -> None:
    """Show a policy, or replace it with --set (rules not given mean no limit), or --clear it."""
    from analytics.access.permissions import Viewer
    from analytics.retention import policies

    me = Viewer(_CLI_ADMIN, "admin")
    with _open(db) as ctx:
        if set_:
            policy = _policy_from(max_age_days, failed_max_age_days, keep_last, payload_ttl_days, archive)
            policies.set_policy(ctx, me, policy, flow)
        elif clear:
            policies.delete_policy(ctx, me, flow)
        stored = policies.get_policy(ctx, me, flow)
    scope = f"flow {flow}" if flow else "global"
    if stored is None:
        console.print(f"{scope}: no policy" + (" (the global one applies)" if flow else " (keep everything)"))
        return
    rules = ", ".join(f"{k}={v}" for k, v in stored.policy.as_dict().items() if v is not None)
    console.print(f"{scope}: {rules} (by {stored.updated_by}, {stored.updated_at})")


@retention_app.command("dry-run")
def retention_dry_run(
    db: DbOption = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow")] = None,
    ids: Annotated[int, typer.Option(help="List at most this many ids")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="The whole plan as JSON")] = False,
) -> None:
    """What a pass would delete and trim now, per flow (nothing changes)."""
    import dataclasses
    import json

    from analytics.access.permissions import Viewer
    from analytics.retention import plan

    with _open(db) as ctx:
        result = plan.dry_run(ctx, Viewer(_CLI_ADMIN, "admin"), flow_id=flow, ids_limit=ids)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), default=str, indent=2))
        return
    table = Table("flow", "delete", "trim", "first ids")
    for f in result.flows:
        table.add_row(f.flow_id, str(f.delete), str(f.trim), " ".join((f.delete_ids + f.trim_ids)[:3]))
    console.print(table)
    console.print(f"would delete {result.delete} and trim {result.trim} runs (as of {result.now})")


@retention_app.command("run")
def retention_run(
    db: DbOption = None,
    compact: Annotated[
        bool | None, typer.Option("--compact/--no-compact", help="Rewrite the table (default: when enough went)")
    ] = None,
) -> None:
    """Run a pass now: archive, delete, trim, then give space back."""
    from analytics.retention import apply

    with _open(db) as ctx, _stage_bar() as bar:
        out = apply.run_retention(ctx, trigger="cli", progress=_reporter(bar), compact=compact)
    mb = 1024 * 1024
    console.print(
        f"deleted {out['deleted']}, trimmed {out['trimmed']}, archived {out['archived']} runs; store "
        f"{out['bytes_before'] / mb:.1f} MB -> {out['bytes_after'] / mb:.1f} MB in {out['seconds']:.2f}s"
    )


@retention_app.command("compact")
def retention_compact(
    db: DbOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Copy the whole store into a fresh file and swap (server stopped)")
    ] = False,
) -> None:
    """Rewrite the executions table now so the file gives space back (--offline: every free block)."""
    from analytics.retention import apply, reclaim_space

    mb = 1024 * 1024
    if offline:
        try:
            done = reclaim_space.compact_offline(_settings(db).db_path)
        except FlowHistoryError as exc:
            err.print(f"[red]error:[/red] {escape(exc.detail)}")
            raise typer.Exit(1) from exc
        console.print(f"{done.rows} runs; store {done.bytes_before / mb:.1f} MB -> {done.bytes_after / mb:.1f} MB")
        return
    with _open(db) as ctx:
        out = apply.compact_now(ctx, trigger="cli")
    console.print(f"{out['rows']} runs; store {out['bytes_before'] / mb:.1f} MB -> {out['bytes_after'] / mb:.1f} MB")


@retention_app.command("restore")
def retention_restore(
    start: Annotated[datetime, typer.Option(help="From (inclusive, UTC)")],
    end: Annotated[datetime, typer.Option(help="To (exclusive, UTC)")],
    db: DbOption = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow")] = None,
) -> None:
    """Bring archived runs of a range back; ids already in the store are skipped."""
    from analytics.retention import restore

    with _open(db) as ctx, _stage_bar() as bar:
        out = restore.restore(ctx, start=start, end=end, flow_id=flow, trigger="cli", progress=_reporter(bar))
    console.print(
        f"restored {out['restored']} runs, refilled {out['refilled']} trimmed payloads from {out['files']} files;"
        f" skipped {out['already_present']} present and {out['unknown_flow']} of deleted flows"
    )



# --- alerts (analytics/alerts; docs/alerts.md) ----------------------------------------------

alerts_app = _Typer(
    help="Alert rules: list them with their states, evaluate now, transitions.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(db: DbOption = None) -> None:
    """Every rule and its state per flow."""
    from analytics.access.permissions import Viewer
    from analytics.alerts import service

    admin = Viewer(_CLI_ADMIN, "admin")
    with _open(db) as ctx:
        rules = service.list_rules(ctx, admin)
        states = service.rule_states(ctx, admin, rules)
    table = Table("rule", "name", "metric", "op", "threshold", "window s", "flow", "state", "value", "runs")
    for rule in rules:
        mine = [(k[1], st) for k, st in sorted(states.items()) if k[0] == rule.id] or [("-", None)]
        for flow_id, st in mine:
            table.add_row(
                rule.id[:8], rule.name, rule.metric.value, rule.operator.value, f"{rule.threshold:g}",
                str(rule.window), flow_id, "PAUSED" if rule.paused else (st.state.value if st else "-"),
                "-" if st is None or st.value is None else f"{st.value:g}", "-" if st is None else str(st.runs),
            )
    console.print(table)


@alerts_app.command("evaluate")
def alerts_evaluate(
    db: DbOption = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id")] = None,
) -> None:
    """Judge the rules now (server stopped); transitions are stored and webhooks sent before exit."""
    from analytics.alerts.lifecycle import start_alerts, stop_alerts

    with _open(db) as ctx:
        alerts = start_alerts(ctx, ingest_trigger=False)
        try:
            out = alerts.engine.evaluate(rule_ids=[rule] if rule else None)
            alerts.dispatcher.wait_idle(ctx.settings.alert_webhook_timeout_s * 3)
        finally:
            stop_alerts(ctx)
    console.print(
        f"{out['rules']} rules, {out['targets']} (rule, flow) pairs judged: {out['transitions']} transitions,"
        f" {out['notifications']} notifications in {out['duration_ms']:.0f} ms"
    )


@alerts_app.command("transitions")
def alerts_transitions(
    db: DbOption = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Transitions, newest first, with the values that caused them."""
    from analytics.access.permissions import Viewer
    from analytics.alerts import service

    with _open(db) as ctx:
        rows = service.list_transitions(ctx, Viewer(_CLI_ADMIN, "admin"), rule_id=rule, flow_id=flow, limit=limit)
    table = Table("at (UTC)", "rule", "flow", "from", "to", "value", "runs", "reason")
    for t in rows:
        x = t.transition
        table.add_row(
            t.at.isoformat(timespec="seconds"), t.rule_id[:8], t.flow_id[:8], x.from_state.value,
            x.to_state.value, "-" if x.value is None else f"{x.value:g}", str(x.runs), x.reason,
        )
    console.print(table)

def main() -> None:
    app()
