"""`flowhistory retention ...`: policies, dry run, a pass, restore (analytics/retention;
docs/retention.md)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table
from rich.text import Text

from analytics.access.permissions import Viewer
from analytics.core.clock import UtcTime
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, StoreLocked
from analytics.retention.plan import MAX_IDS
from analytics.retention.policies import MAX_DAYS, MAX_KEEP
from api.cli.common import (
    CLI_ADMIN,
    DbOption,
    Typer,
    UsageError,
    console,
    err,
    error,
    fail,
    json_of,
    on_store,
    refuse_missing_store,
    refuse_while_serving,
    settings_for,
)
from api.cli.remote import Remote

ADMIN = Viewer(CLI_ADMIN, "admin")

app = Typer(
    help="Retention: policies, dry run, a pass (archive, delete, trim, compact), restore.",
    no_args_is_help=True,
)


def _stage_bar() -> Any:
    """A rich progress bar with one task per stage (plan, archive, delete, trim, compact ...)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
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


def _days(value: float | None) -> float | None:
    """A number of days must be finite: nan or inf was refused on the store, but through a server
    it could not even be sent (JSON has neither), a traceback. Its range is the library's
    (policies.validate), refused here as a bad value (exit 2, naming the option), not exit 1."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of days")
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value:g} is not more than 0 days (leave it out for no limit)")
    if value is not None and value > MAX_DAYS:
        raise typer.BadParameter(f"{value:g} is more than {MAX_DAYS:g} days")
    return value


MaxAge = Annotated[
    float | None,
    typer.Option(
        help="Delete runs older than this many days (every status, unless --failed-max-age-days is set)",
        callback=_days,
    ),
]
FailedAge = Annotated[
    float | None, typer.Option(help="Delete error/aborted runs older than this (>= max-age)", callback=_days)
]
KeepLast = Annotated[
    int | None, typer.Option(min=1, max=MAX_KEEP, help="Keep at most the newest N runs of each flow")
]
PayloadTtl = Annotated[
    float | None, typer.Option(help="Drop inputs/outputs/node_results after this many days", callback=_days)
]
Archive = Annotated[
    bool | None,
    typer.Option("--archive/--no-archive", help="Archive to Parquet before deleting or trimming (default)"),
]
FlowOpt = Annotated[str | None, typer.Option("--flow", help="A flow id (default: the global policy)")]


def _flow_path(flow: str | None, tail: str) -> str:
    return f"/api/v1/flows/{quote(flow, safe='')}/retention/{tail}" if flow else f"/api/v1/retention/{tail}"


@app.command("policy")
def retention_policy(
    typer_ctx: typer.Context,
    db: DbOption = None,
    flow: FlowOpt = None,
    set_: Annotated[bool, typer.Option("--set", help="Replace the policy with the rules given")] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove it (a flow then follows the global one)")
    ] = False,
    max_age_days: MaxAge = None,
    failed_max_age_days: FailedAge = None,
    keep_last: KeepLast = None,
    payload_ttl_days: PayloadTtl = None,
    archive: Archive = None,
) -> None:
    """Show a policy, or replace it with --set (rules not given mean no limit), or --clear it."""
    from analytics.retention import policies
    from api.schemas.retention import PolicyOut

    rules_given: dict[str, Any] = {
        "max_age_days": max_age_days,
        "failed_max_age_days": failed_max_age_days,
        "keep_last": keep_last,
        "payload_ttl_days": payload_ttl_days,
        "archive": True if archive is None else archive,
    }
    # rules without --set were once ignored (the policy shown, exit 0): a usage error instead
    given = [
        f"--{flag.replace('_', '-')}"
        for flag, value in (
            ("max_age_days", max_age_days),
            ("failed_max_age_days", failed_max_age_days),
            ("keep_last", keep_last),
            ("payload_ttl_days", payload_ttl_days),
        )
        if value is not None
    ] + ([] if archive is None else ["--archive" if archive else "--no-archive"])
    if set_ and clear:
        raise UsageError("--set and --clear cannot go together", typer_ctx)
    if clear and given:
        raise UsageError(
            f"--clear takes no rules ({', '.join(given)}): to replace the policy use --set", typer_ctx
        )
    if given and not set_:
        raise UsageError(
            f"rules need --set ({', '.join(given)} given without it; with no rules the policy is shown)",
            typer_ctx,
        )
    if failed_max_age_days is not None and max_age_days is not None and failed_max_age_days < max_age_days:
        raise UsageError(  # the library's own check (policies.validate) was exit 1
            f"--failed-max-age-days {failed_max_age_days:g} is below --max-age-days {max_age_days:g}: "
            "failed runs are kept longer, not shorter",
            typer_ctx,
        )

    def local(ctx: Context) -> dict[str, Any]:
        if set_:
            policies.set_policy(ctx, ADMIN, _policy_from(**rules_given), flow)
        elif clear:
            policies.delete_policy(ctx, ADMIN, flow)
        stored = policies.get_policy(ctx, ADMIN, flow)
        if stored is None:
            out = PolicyOut(flow_id=flow, updated_by=None, updated_at=None, inherited=flow is not None)
        else:
            out = PolicyOut(
                **stored.policy.as_dict(),
                flow_id=flow,
                updated_by=stored.updated_by,
                updated_at=stored.updated_at,
                inherited=False,
            )
        return out.model_dump(mode="json")

    def remote(api: Remote) -> dict[str, Any]:
        if set_:
            answer: dict[str, Any] = api.put(_flow_path(flow, "policy"), json=rules_given)
            return answer
        if clear and flow:
            api.delete(_flow_path(flow, "policy"))
        elif clear:
            refuse_while_serving(
                settings_for(db), "the API keeps a global policy: set one with --set instead"
            )
        answer = api.get(_flow_path(flow, "policy"))
        return answer

    stored = on_store(db, local, remote, create=set_)  # setting a policy may start a store
    scope = f"flow {flow}" if flow else "global"
    if stored["updated_at"] is None:
        console.print(
            Text(f"{scope}: no policy" + (" (the global one applies)" if flow else " (keep everything)"))
        )
        return
    rules = ", ".join(f"{k}={stored[k]}" for k in rules_given if stored[k] is not None)
    console.print(Text(f"{scope}: {rules} (by {stored['updated_by']}, {stored['updated_at']})"))


@app.command("dry-run")
def retention_dry_run(
    db: DbOption = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow")] = None,
    ids: Annotated[int, typer.Option(min=0, max=MAX_IDS, help="List at most this many ids")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="The whole plan as JSON")] = False,
) -> None:
    """What a pass would delete and trim now, per flow (nothing changes)."""
    import json

    from analytics.retention import plan
    from api.schemas.retention import PlanOut

    result = on_store(
        db,
        lambda ctx: json_of(PlanOut, plan.dry_run(ctx, ADMIN, flow_id=flow, ids_limit=ids)),
        lambda api: api.post(_flow_path(flow, "dry-run"), json={"ids_limit": ids}),
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table("flow", "delete", "trim", "first ids")
    for f in result["flows"]:
        first = " ".join((f["delete_ids"] + f["trim_ids"])[:3])
        table.add_row(*map(Text, (f["flow_id"], str(f["delete"]), str(f["trim"]), first)))
    console.print(table)
    console.print(f"would delete {result['delete']} and trim {result['trim']} runs (as of {result['now']})")


@app.command("run")
def retention_run(
    db: DbOption = None,
    compact: Annotated[
        bool | None,
        typer.Option("--compact/--no-compact", help="Rewrite the table (default: when enough went)"),
    ] = None,
) -> None:
    """Run a pass now: archive, delete, trim, then give space back (the server's job when it runs)."""
    from analytics.retention import apply

    def local(ctx: Context) -> dict[str, Any]:
        with _stage_bar() as bar:
            return apply.run_retention(ctx, trigger="cli", progress=_reporter(bar), compact=compact)

    def remote(api: Remote) -> dict[str, Any]:
        if compact is not None:
            refuse_while_serving(
                settings_for(db), "its pass decides when to compact: run without --compact/--no-compact"
            )
        started = api.post("/api/v1/retention/run", params={"wait": "true"})
        job = started.get("job") or {}
        if started["result"] is None:
            error(str(job.get("last_error")), "retention failed")
            raise typer.Exit(1)
        answer: dict[str, Any] = started["result"]
        return answer

    out = on_store(db, local, remote)
    mb = 1024 * 1024
    console.print(
        f"deleted {out['deleted']}, trimmed {out['trimmed']}, archived {out['archived']} runs; store "
        f"{out['bytes_before'] / mb:.1f} MB -> {out['bytes_after'] / mb:.1f} MB in {out['seconds']:.2f}s"
    )


@app.command("compact")
def retention_compact(
    db: DbOption = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Copy the whole store into a fresh file and swap (server stopped)"),
    ] = False,
) -> None:
    """Rewrite the executions table now so the file gives space back (--offline: every free block)."""
    from analytics.retention import apply, reclaim_space

    mb = 1024 * 1024
    if offline:
        settings = settings_for(db)
        refuse_missing_store(settings)
        try:
            done = reclaim_space.compact_offline(settings.db_path)
        except StoreLocked:
            refuse_while_serving(
                settings, "--offline swaps the file: without it, compaction runs on the server"
            )
        except FlowHistoryError as exc:
            fail(exc, 1)
        console.print(
            f"{done.rows} runs; store {done.bytes_before / mb:.1f} MB -> {done.bytes_after / mb:.1f} MB"
        )
        return
    out = on_store(
        db,
        lambda ctx: apply.compact_now(ctx, trigger="cli"),
        lambda api: api.post("/api/v1/retention/compact"),
    )
    console.print(
        f"{out['rows']} runs; store {out['bytes_before'] / mb:.1f} MB -> {out['bytes_after'] / mb:.1f} MB"
    )


_TIME = TypeAdapter(UtcTime)


def _time(text: str) -> datetime:
    """A time as the API reads one in its body (naive UTC): typer's own datetime read
    `20261201` as epoch seconds (1970-08-23) and `1796083200000` as milliseconds, which the API
    refuses, and restored a very different range without a word."""
    try:
        return _TIME.validate_python(text)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


@app.command("restore")
def retention_restore(
    typer_ctx: typer.Context,
    start: Annotated[
        datetime,
        typer.Option(parser=_time, metavar="TIME", help="From (inclusive; ISO 8601, UTC without an offset)"),
    ],
    end: Annotated[datetime, typer.Option(parser=_time, metavar="TIME", help="To (exclusive; as --start)")],
    db: DbOption = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow")] = None,
) -> None:
    """Bring archived runs of a range back; ids already in the store are skipped."""
    from analytics.retention import restore

    if end <= start:  # the library's own check was exit 1
        raise UsageError(f"--end {end.isoformat()} is not after --start {start.isoformat()}", typer_ctx)

    def local(ctx: Context) -> dict[str, Any]:
        with _stage_bar() as bar:
            return restore.restore(
                ctx, start=start, end=end, flow_id=flow, trigger="cli", progress=_reporter(bar)
            )

    body = {"start": start.isoformat(), "end": end.isoformat(), "flow_id": flow}
    out = on_store(db, local, lambda api: api.post("/api/v1/retention/restore", json=body))
    console.print(
        f"restored {out['restored']} runs, refilled {out['refilled']} trimmed payloads from {out['files']} files;"
        f" skipped {out['already_present']} present, {out['unknown_flow']} of deleted flows and"
        f" {out.get('other_owner', 0)} whose flow id now names another owner's flow"
    )
