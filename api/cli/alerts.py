"""`flowhistory alerts ...`: rules and their states, evaluating now, transitions (analytics/alerts;
docs/alerts.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from api.cli.common import CLI_ADMIN, DbOption, Typer, console, json_of, on_store
from api.cli.remote import Remote
from api.schemas.alerts import TransitionOut, rule_out

ADMIN = Viewer(CLI_ADMIN, "admin")

app = Typer(help="Alert rules: list them with their states, evaluate now, transitions.", no_args_is_help=True)


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat(timespec="seconds")


@app.command("list")
def alerts_list(db: DbOption = None) -> None:
    """Every rule and its state per flow."""
    from analytics.alerts import service

    def local(ctx: Context) -> list[dict[str, Any]]:
        rules = service.list_rules(ctx, ADMIN)
        states = service.rule_states(ctx, ADMIN, rules)
        return [rule_out(r, states).model_dump(mode="json") for r in rules]

    rules = on_store(db, local, lambda api: api.get("/api/v1/alerts/rules"))
    table = Table("rule", "name", "metric", "op", "threshold", "window s", "flow", "state", "value", "runs")
    for rule in rules:
        for st in rule["states"] or [None]:
            cells = (
                rule["id"][:8],
                rule["name"],
                rule["metric"],
                rule["operator"],
                f"{rule['threshold']:g}",
                str(rule["window"]),
                "-" if st is None else st["flow_id"],
                "PAUSED" if rule["paused"] else (st["state"] if st else "-"),
                "-" if st is None or st["value"] is None else f"{st['value']:g}",
                "-" if st is None else str(st["runs"]),
            )
            table.add_row(*map(Text, cells))
    console.print(table)


@app.command("evaluate")
def alerts_evaluate(
    db: DbOption = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id")] = None,
) -> None:
    """Judge the rules now; transitions are stored and webhooks sent (by the server, when it runs)."""
    from analytics.alerts.lifecycle import evaluate_now

    def remote(api: Remote) -> dict[str, Any]:
        if rule:
            answer: dict[str, Any] = api.post(f"/api/v1/alerts/rules/{quote(rule, safe='')}/evaluate")
            return answer
        answer = api.post("/api/v1/alerts/evaluate")
        return answer

    out = on_store(db, lambda ctx: evaluate_now(ctx, rule_ids=[rule] if rule else None), remote)
    console.print(
        f"{out['rules']} rules, {out['targets']} (rule, flow) pairs judged: {out['transitions']} transitions,"
        f" {out['notifications']} notifications in {out['duration_ms']:.0f} ms"
    )


@app.command("transitions")
def alerts_transitions(
    db: DbOption = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Transitions, newest first, with the values that caused them."""
    from analytics.alerts import service

    def local(ctx: Context) -> list[dict[str, Any]]:
        found = service.list_transitions(ctx, ADMIN, rule_id=rule, flow_id=flow, limit=limit)
        return [json_of(TransitionOut, t) for t in found]

    def remote(api: Remote) -> list[dict[str, Any]]:
        if rule is None:
            answer: list[dict[str, Any]] = api.get(
                "/api/v1/alerts/transitions", params={"limit": limit, **({"flow_id": flow} if flow else {})}
            )
            return answer
        if flow is None:
            answer = api.get(
                f"/api/v1/alerts/rules/{quote(rule, safe='')}/transitions", params={"limit": limit}
            )
            return answer
        # the API filters by rule or by flow: the rule's, then its flow's (at most 1000 read)
        rows = api.get(f"/api/v1/alerts/rules/{quote(rule, safe='')}/transitions", params={"limit": 1000})
        return [t for t in rows if t["flow_id"] == flow][:limit]

    rows = on_store(db, local, remote)
    table = Table("at (UTC)", "rule", "flow", "from", "to", "value", "runs", "reason")
    for t in rows:
        cells = (
            _when(t["at"]),
            t["rule_id"][:8],
            t["flow_id"][:8],
            t["from_state"],
            t["to_state"],
            "-" if t["value"] is None else f"{t['value']:g}",
            str(t["runs"]),
            t["reason"],
        )
        table.add_row(*map(Text, cells))
    console.print(table)
