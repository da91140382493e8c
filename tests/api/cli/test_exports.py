"""`flowhistory export run | compact | status` against a temp store (the server not running)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from analytics.core.config import Settings
from analytics.core.context import open_context
from api.cli import app
from tests.factories import SECRET
from tests.factories.exports import add_runs, read, seed_flow

ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "120", "NO_COLOR": "1"}


def test_export_run_status_and_a_failing_target(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with open_context(Settings(db_path=db)) as ctx:
        add_runs(ctx, seed_flow(ctx), ["2026-11-01", "2026-11-02"], 4)
    runner = CliRunner()

    done = runner.invoke(app, ["export", "run", "--db", str(db)], env=ENV)
    assert done.exit_code == 0, done.output
    assert "8 runs and 16 node rows written" in " ".join(done.output.split())
    assert read(tmp_path / "exports", "SELECT count(*) FROM t") == [(8,)]

    status = runner.invoke(app, ["export", "status", "--db", str(db), "--json"], env=ENV)
    assert status.exit_code == 0, status.output
    body = json.loads(status.output)
    assert body["ok"] is True and body["tables"]["executions"]["rows"] == 8

    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    env = {**ENV, "FLOWHISTORY_EXPORT_URL": str(blocker / "exports")}
    failed = runner.invoke(app, ["export", "run", "--db", str(db)], env=env)
    assert failed.exit_code == 1 and "export failed" in failed.output
    status = runner.invoke(app, ["export", "status", "--db", str(db)], env=env)
    assert status.exit_code == 1
    text = " ".join(status.output.split())
    assert "last export failed" in text and "NotADirectoryError" in text

    compacted = runner.invoke(app, ["export", "compact", "--db", str(db)], env=ENV)
    assert compacted.exit_code == 0 and "executions" in compacted.output
