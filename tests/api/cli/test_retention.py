"""`flowhistory retention ...` in-process: policy, dry run, run, restore, refusal of bad rules."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from analytics.core.config import Settings
from analytics.core.context import open_context
from api.cli import app
from tests.factories import SECRET
from tests.factories.retention import generate, make_flows

ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "200", "NO_COLOR": "1"}


def cli(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["retention", *args, "--db", str(db)], env=ENV)
    return result.exit_code, result.output


def test_policy_dry_run_run_restore(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        ids = make_flows(ctx, ["f"])
        made = generate(ctx, [ids["f"]], 200, days=400)  # NOW is in the past: days before it
    code, out = cli(db, "policy", "--set", "--keep-last", "50")
    assert code == 0 and "keep_last=50" in out
    code, out = cli(db, "policy", "--set", "--max-age-days", "-1")
    assert code == 2 and "--max-age-days" in out  # a bad value: refused as the command line is read
    code, out = cli(db, "policy")
    assert code == 0 and "keep_last=50" in out  # the bad rule changed nothing

    code, out = cli(db, "dry-run")
    assert code == 0 and f"would delete {len(made) - 50} and trim 0" in out
    code, out = cli(db, "run")
    assert code == 0 and f"deleted {len(made) - 50}," in out, out
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert ctx.counters.stats(ids["f"]).total_executions == 50
    code, out = cli(db, "restore", "--start", "2000-01-01", "--end", "2100-01-01", "--flow", ids["f"])
    assert code == 0 and f"restored {len(made) - 50} runs" in out, out
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert ctx.counters.stats(ids["f"]).total_executions == len(made)


def test_offline_compaction_gives_every_free_block_back(tmp_path: Path) -> None:
    from analytics.retention import reclaim_space

    db = tmp_path / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        ids = make_flows(ctx, ["f"])
        generate(ctx, [ids["f"]], 3000, days=400, pad=4000)
    big = reclaim_space.store_bytes(db)
    assert cli(db, "policy", "--set", "--keep-last", "300")[0] == 0
    code, out = cli(db, "run", "--no-compact")
    assert code == 0, out
    code, out = cli(db, "compact", "--offline")
    assert code == 0, out
    # ~20 tables of at least one 256 KB block each are most of what is left at this size
    assert reclaim_space.store_bytes(db) < big / 1.8
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:  # the same store, working
        assert ctx.counters.stats(ids["f"]).total_executions == 300
        assert (
            ctx.store.read(lambda c: c.execute("SELECT count(*) FROM execution_nodes").fetchall())[0][0] > 0
        )
        kinds = ctx.store.read(
            lambda c: c.execute(
                "SELECT DISTINCT constraint_type FROM duckdb_constraints() WHERE table_name = 'executions'"
            ).fetchall()
        )
        assert {"PRIMARY KEY", "CHECK"} <= {k[0] for k in kinds}


def test_restore_reads_its_times_as_the_api_does(tmp_path: Path) -> None:
    """`--start 20261201` was read as epoch seconds (1970-08-23) and `1796083200000` as
    milliseconds, and the command restored that range without a word; the API refuses both."""
    db = tmp_path / "s.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)):
        pass
    for bad in ("20261201", "1796083200000", "yesterday"):
        code, out = cli(db, "restore", "--start", bad, "--end", "2026-12-08")
        assert code == 2, (bad, code, out)
        assert "--start" in out and "restored" not in out, out
    code, out = cli(db, "restore", "--start", "2026-12-01T00:00:00+01:00", "--end", "2026-12-08")
    assert code == 0 and "restored 0 runs" in out, out
