"""A real `flowhistory serve` under ingest load: a backup taken through it holds every run
acknowledged before the backup began, a restore is refused while it runs, and SIGTERM stops it
within 10 s with every acknowledged run stored and exit code 0."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx

from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from tests.factories import SECRET
from tests.live_server import FLOWHISTORY, LiveServer, server_env
from tests.test_durability import MIN_ACKS, Outcome, create_flow, post_runs

WRITERS = 4
STOP_BOUND_S = 10.0  # the bound on a graceful stop (a bound, not a speed assertion)


def start_writers(
    server: LiveServer, flow_id: str
) -> tuple[Outcome, threading.Event, list[threading.Thread]]:
    out = Outcome([], [], [])
    stop = threading.Event()
    threads = [
        threading.Thread(target=post_runs, args=(server.url, flow_id, stop, out, 900 + n), daemon=True)
        for n in range(WRITERS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(out.acked) < MIN_ACKS and not out.failures and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(out.acked) >= MIN_ACKS and not out.failures, out.failures[:3]
    return out, stop, threads


def cli(*args: str, port: int) -> subprocess.CompletedProcess[str]:
    env = server_env() | {"FLOWHISTORY_PORT": str(port)}
    return subprocess.run([FLOWHISTORY, *args], env=env, capture_output=True, text=True, timeout=120)


def stored_ids(db: Path) -> set[str]:
    with open_context(Settings(db_path=db, webui_secret_key=SECRET), migrate=False) as ctx:
        assert ctx.store.read(migrations.version) == migrations.head()
        return {
            r[0] for r in ctx.store.read(lambda c: c.execute("SELECT id::VARCHAR FROM executions").fetchall())
        }


def test_backup_under_ingest_then_restore(tmp_path: Path) -> None:
    db = tmp_path / "data" / "store.duckdb"
    db.parent.mkdir()
    dest = tmp_path / "backup.duckdb"
    server = LiveServer(db, "backup").start()
    try:
        assert httpx.get(f"{server.url}/ready").json()["ready"] is True
        flow_id = create_flow(server.url)
        out, stop, threads = start_writers(server, flow_id)
        acked_before = [s.id for s in out.acked]  # answered before the backup was asked for
        made = cli("backup", str(dest), "--db", str(db), port=server.port)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "through the server" in made.stdout
        acked_during = len(out.acked)
        refused = cli("restore", str(dest), "--db", str(db), port=server.port)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not out.failures, out.failures[:3]
        assert refused.returncode == 2 and "stop the server" in refused.stderr, refused.stderr
        assert len(out.acked) > acked_during or acked_during > len(acked_before), (
            "ingest ran during the backup"
        )
        assert server.stop() == 0
    finally:
        server.kill()
    assert not list((db.parent / "backups").iterdir()), "the CLI left the server's copy behind"
    live = stored_ids(db)
    assert {s.id for s in out.acked} <= live, "the refused restore lost runs"

    restored = tmp_path / "restored" / "store.duckdb"
    done = cli("restore", str(dest), "--db", str(restored), port=0)
    assert done.returncode == 0, done.stdout + done.stderr
    ids = stored_ids(restored)
    missing = set(acked_before) - ids
    assert not missing, f"{len(missing)} runs acknowledged before the backup are not in it"
    assert ids <= live
    with open_context(Settings(db_path=restored, webui_secret_key=SECRET)) as ctx:  # integrity
        counts = ctx.store.read(
            lambda c: {
                t: c.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
                for (t,) in c.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
            }
        )
        assert counts["executions"] == len(ids)
        orphans = ctx.store.read(
            lambda c: c.execute(
                "SELECT count(*) FROM execution_nodes WHERE execution_id NOT IN (SELECT id FROM executions)"
            ).fetchall()[0][0]
        )
        assert orphans == 0


def test_sigterm_under_load_acknowledges_what_it_answered_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    server = LiveServer(db, "sigterm").start()
    try:
        flow_id = create_flow(server.url)
        out, stop, threads = start_writers(server, flow_id)
        assert server.proc is not None
        os.kill(server.proc.pid, 15)
        try:
            code = server.proc.wait(timeout=STOP_BOUND_S)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the server did not stop within {STOP_BOUND_S}s:\n{server.stderr()}"
            ) from exc
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        server.kill()
    assert code == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()
    missing = {s.id for s in out.acked} - stored_ids(db)
    assert not missing, f"{len(missing)} of {len(out.acked)} acknowledged runs are not stored"
    assert not db.with_name(db.name + ".wal").exists() or not db.with_name(db.name + ".wal").stat().st_size, (
        "the shutdown did not checkpoint"
    )


def test_backup_finds_the_server_on_any_port(tmp_path: Path) -> None:
    """No FLOWHISTORY_PORT: the command finds the server by its server.json."""
    db = tmp_path / "data" / "store.duckdb"
    db.parent.mkdir()
    dest = tmp_path / "backup.duckdb"
    with LiveServer(db, "backup") as server:
        create_flow(server.url)
        made = subprocess.run(
            [FLOWHISTORY, "backup", str(dest), "--db", str(db)],
            env=server_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        assert "through the server" in made.stdout and dest.is_file()
