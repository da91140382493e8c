"""`flowhistory alerts list|evaluate|transitions` on a temp store (server stopped)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from analytics.core.config import Settings
from analytics.core.context import open_context
from api.cli import app
from tests.analytics.alerts import conftest as _alerts_fixtures
from tests.factories import SECRET
from tests.factories.alerts import Run, make_rule, save, setup_flows

# the fixtures of the folder this file came from (conftests are per folder)
settings = _alerts_fixtures.settings

ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "200", "NO_COLOR": "1"}


def test_list_evaluate_transitions(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with open_context(Settings(db_path=db)) as ctx:
        s = setup_flows(ctx)
        now = ctx.store.read(lambda c: c.execute("SELECT now()::TIMESTAMP").fetchall()[0][0])
        a = s.flows["a"]
        save(
            ctx,
            [
                Run(a, now - timedelta(minutes=5, seconds=i), "error", 10, "", "n", "m", "error", 1)
                for i in range(4)
            ],
        )
        rule = make_rule(ctx, name="cli-rule", flow_id=a, window="1h")
    runner = CliRunner()
    out = runner.invoke(app, ["alerts", "evaluate", "--db", str(db)], env=ENV)
    assert out.exit_code == 0, out.output
    assert "1 rules, 1 (rule, flow) pairs judged: 1 transitions" in out.output
    out = runner.invoke(app, ["alerts", "list", "--db", str(db)], env=ENV)
    assert out.exit_code == 0 and "cli-rule" in out.output and "FIRING" in out.output
    out = runner.invoke(app, ["alerts", "transitions", "--rule", rule.id, "--db", str(db)], env=ENV)
    assert (
        out.exit_code == 0
        and "OK" in out.output
        and "FIRING" in out.output
        and "failure_rate 1" in out.output
    )
