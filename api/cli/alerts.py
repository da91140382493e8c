"""`flowhistory alerts ...`: rules and their states, evaluating now, transitions (analytics/alerts;
docs/alerts.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.common import CLI_ADMIN, DbOption, Typer, console, open_store

if TYPE_CHECKING:
    from analytics.alerts.state_machine import RuleState

app = Typer(help="Alert rules: list them with their states, evaluate now, transitions.", no_args_is_help=True)


@app.command("list")
def alerts_list(db: DbOption = None) -> None:
    """Every rule and its state per flow."""
    from analytics.access.permissions import Viewer
    from analytics.alerts import service

    admin = Viewer(CLI_ADMIN, "admin")
    with open_store(db) as ctx:
        rules = service.list_rules(ctx, admin)
        states = service.rule_states(ctx, admin, rules)
    table = Table("rule", "name", "metric", "op", "threshold", "window s", "flow", "state", "value", "runs")
    for rule in rules:
        mine: list[tuple[str, RuleState | None]] = [(k[1], st) for k, st in sorted(states.items()) if k[0] == rule.id] or [("-", None)]
        for flow_id, st in mine:
            table.add_row(
                rule.id[:8],
                rule.name,
                rule.metric.value,
                rule.operator.value,
                f"{rule.threshold:g}",
                str(rule.window),
                flow_id,
                "PAUSED" if rule.paused else (st.state.value if st else "-"),
                "-" if st is None or st.value is None else f"{st.value:g}",
                "-" if st is None else str(st.runs),
            )
    console.print(table)


@app.command("evaluate")
def alerts_evaluate(
    db: DbOption = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id")] = None,
) -> None:
    """Judge the rules now (server stopped); transitions are stored and webhooks sent before exit."""
    from analytics.alerts.lifecycle import evaluate_now

    with open_store(db) as ctx:
        out = evaluate_now(ctx, rule_ids=[rule] if rule else None)
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
    from analytics.access.permissions import Viewer
    from analytics.alerts import service

    with open_store(db) as ctx:
        rows = service.list_transitions(
            ctx, Viewer(CLI_ADMIN, "admin"), rule_id=rule, flow_id=flow, limit=limit
        )
    table = Table("at (UTC)", "rule", "flow", "from", "to", "value", "runs", "reason")
    for t in rows:
        x = t.transition
        table.add_row(
            t.at.isoformat(timespec="seconds"),
            t.rule_id[:8],
            t.flow_id[:8],
            x.from_state.value,
            x.to_state.value,
            "-" if x.value is None else f"{x.value:g}",
            str(x.runs),
            x.reason,
        )
    console.print(table)
