"""Issue 13 over a real `flowhistory serve`: an SQL memory bomb is a 413, a runaway a 422, the
server's memory stays flat and history calls keep answering meanwhile; and `flowhistory sql`
stops the same way with a non-zero exit. Workers are capped at 512 MiB: nothing here can take
more than that from the machine."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.dataset as ds
import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.exports import run_export
from api.app import create_app
from tests.analytics.exports import procfs
from tests.analytics.exports.conftest import seed
from tests.factories import SECRET, bearer, build_world
from tests.live_server import FLOWHISTORY, LiveServer, free_port, server_env

MiB = 1024**2
LIMITS = {"FLOWHISTORY_SQL_WORKER_MEMORY": "512MiB", "FLOWHISTORY_SQL_WORKERS": "1"}
BOMB = "SELECT list(range(2000000000)) AS l"  # the query
SLOW_BOMB = "SELECT list(range(100000000)) AS l"  # grows past DuckDB's memory_limit, slowly
RUNAWAY = "SELECT count(*) AS n FROM range(1000000000) a, range(100000) b"


class CappedServer(LiveServer):
    """A LiveServer whose SQL workers are capped small, and with no scheduled jobs."""

    def spawn(self) -> subprocess.Popen[bytes]:
        self._starts += 1
        self.port = free_port()
        env = {**server_env(), **LIMITS, "FLOWHISTORY_SCHEDULER_ENABLED": "false"}
        with open(self.stderr_path, "wb") as err, open(self.db.parent / f"{self.name}.stdout", "ab") as out:
            self.proc = subprocess.Popen(
                [FLOWHISTORY, "serve", "--db", str(self.db), "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self.proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """A store with the seeded world and its export; the TestClient closes it before serving."""
    folder = tmp_path_factory.mktemp("live-sql")
    settings = Settings(
        db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=0, scheduler_enabled=False
    )
    with TestClient(create_app(settings)) as client:
        w = build_world(client)
        seed(w)
        run_export(w.ctx)
    runs = ds.dataset(folder / "exports" / "executions", partitioning="hive").to_table(columns=["flow_id"])
    shared_runs = runs.column("flow_id").to_pylist().count(w.shared)  # read by pyarrow, not the server
    assert shared_runs > 0
    return settings.db_path, w.shared, shared_runs


@pytest.fixture(scope="module")
def server(store: tuple[Path, str, int]) -> Iterator[CappedServer]:
    s = CappedServer(store[0], "capped")
    with s:
        yield s


def _rss(server: CappedServer) -> int:
    assert server.proc is not None
    return procfs.rss(server.proc.pid)


@pytest.mark.parametrize("sql", [BOMB, SLOW_BOMB])
def test_bomb_is_a_413_while_history_answers_and_memory_stays_flat(
    server: CappedServer, store: tuple[Path, str, int], sql: str
) -> None:
    _, shared, shared_runs = store
    admin, owner = bearer("admin"), bearer("owner")
    with httpx.Client(base_url=server.url, timeout=120.0) as client:
        warm = client.post("/api/v1/sql", json={"sql": "SELECT count(*) FROM executions"}, headers=admin)
        assert warm.status_code == 200, warm.text  # the pool is up, the route warm
        before = _rss(server)
        answer: list[httpx.Response] = []
        bomb = threading.Thread(
            target=lambda: answer.append(
                client.post("/api/v1/sql", json={"sql": sql, "timeout_s": 60}, headers=admin)
            )
        )
        bomb.start()
        history = 0
        peak = before
        while bomb.is_alive() or history < 3:  # history calls while the bomb runs (and some after)
            r = client.get(f"/api/v1/flows/{shared}/executions", headers=owner)
            assert r.status_code == 200, r.text
            assert len(r.json()) == shared_runs
            history += 1
            peak = max(peak, _rss(server))
        bomb.join()
        assert peak - before < 100 * MiB, f"the server grew {(peak - before) / MiB:.0f} MB"
        [r] = answer
        assert r.status_code == 413, r.text
        assert r.headers["content-type"] == "application/json"
        detail = r.json()["detail"]
        assert "needed more memory" in detail and "512 MB" in detail
        again = client.post(
            "/api/v1/sql", json={"sql": "SELECT count(*) AS n FROM executions"}, headers=admin
        )
        assert again.status_code == 200 and again.json()["rows"] == [[60]]


def test_runaway_is_a_422_naming_the_time_limit(server: CappedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        r = client.post("/api/v1/sql", json={"sql": RUNAWAY, "timeout_s": 1}, headers=bearer("admin"))
        assert r.status_code == 422, r.text
        assert "time limit of 1 s" in r.json()["detail"]
        ok = client.post("/api/v1/sql", json={"sql": "SELECT 42 AS x"}, headers=bearer("admin"))
        assert ok.json()["rows"] == [[42]]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **LIMITS, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "flowhistory"), "sql", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a safety net
    )


@pytest.mark.parametrize("sql", [BOMB, SLOW_BOMB])
def test_cli_bomb_is_a_clean_error(store: tuple[Path, str, int], tmp_path: Path, sql: str) -> None:
    export = str(store[0].parent / "exports")
    printed = _cli(sql, "--export", export)
    assert printed.returncode == 1, printed.stderr
    assert "needed more memory" in printed.stderr and "512 MB" in printed.stderr
    assert "Traceback" not in printed.stderr
    target = tmp_path / "out.parquet"
    written = _cli(sql, "--export", export, "--output", str(target))
    assert written.returncode == 1, written.stderr
    assert "needed more memory" in written.stderr and "Traceback" not in written.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_runaway_is_a_clean_error(store: tuple[Path, str, int]) -> None:
    r = _cli(RUNAWAY, "--export", str(store[0].parent / "exports"), "--timeout", "1")
    assert r.returncode == 1 and "time limit of 1 s" in r.stderr, r.stderr
