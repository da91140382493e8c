"""One process owns a store: a second server or a CLI command says so at once and exits."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import bearer, make_execution
from tests.live_server import FLOWHISTORY, LiveServer, server_env

EXIT_BOUND = 20.0  # safety bound: "at once" is a couple of seconds here, far below this
IN_USE = "in use by another process"
HELD = "holds the store; stop it first"


def words(text: str) -> str:
    """Rich wraps lines at the terminal width; compare text with whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's refusal tests: each checks it still serves afterwards."""
    with LiveServer(tmp_path_factory.mktemp("owner") / "store.duckdb", "first") as server:
        yield server


def save_run(server: LiveServer, flow_id: str) -> str:
    r = httpx.post(
        f"{server.url}/api/v1/flows/{flow_id}/executions",
        json=make_execution(flow_id),
        headers=bearer("owner"),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def make_flow(server: LiveServer) -> str:
    r = httpx.post(
        f"{server.url}/api/v1/flows/create",
        json={"name": "f", "nodes": [], "edges": []},
        headers=bearer("owner"),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_second_server_on_the_same_store_fails_at_once(first: LiveServer) -> None:
    flow_id = make_flow(first)
    before = save_run(first, flow_id)

    second = LiveServer(first.db, "second")
    proc = second.spawn()
    try:
        code = proc.wait(timeout=EXIT_BOUND)
    finally:
        second.kill()
    assert code != 0
    assert IN_USE in words(second.stderr()), second.stderr()
    with pytest.raises(httpx.ConnectError):  # it never served
        httpx.get(f"{second.url}/health", timeout=2.0)

    # the first server keeps serving, reads and writes
    r = httpx.get(f"{first.url}/health")
    assert r.status_code == 200 and r.json()["store_open"] is True
    after = save_run(first, flow_id)
    for run_id in (before, after):
        r = httpx.get(f"{first.url}/api/v1/flows/{flow_id}/executions/{run_id}", headers=bearer("owner"))
        assert r.status_code == 200, r.text


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWHISTORY, *args],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "command", [("db", "upgrade"), ("db", "downgrade"), ("retention", "compact", "--offline")], ids=" ".join
)
def test_cli_refuses_a_store_the_server_holds(first: LiveServer, command: tuple[str, ...]) -> None:
    """Commands with no API counterpart (the others go through the server: test_cli_remote.py)."""
    result = cli(*command, "--db", str(first.db))
    assert result.returncode != 0, result.stdout
    message = words(result.stderr)
    assert HELD in message, result.stderr
    assert "Traceback" not in result.stderr
    assert httpx.get(f"{first.url}/health").status_code == 200


def test_the_cli_works_again_once_the_server_stopped(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "store.duckdb", "alone") as server:
        make_flow(server)  # creates user "owner" on first sight of its token
        assert cli("db", "downgrade", "--db", str(server.db)).returncode != 0
        server.stop()
    result = cli("users", "list", "--db", str(server.db))
    assert result.returncode == 0, result.stderr
    assert "owner" in result.stdout and "admin" in result.stdout
