"""The CLI while a server holds the store: each command goes through the server's API and prints
what it prints on the stopped store (issue 13, item 9).

One store is set up through a real server, stopped, and copied twice. The same command sequence
runs on one copy with no server (each command opens the store) and on the other while a real
`flowhistory serve` holds it (each command asks the server); the outputs must be equal once ids,
times, durations, file sizes and the folder are masked. Commands with no API counterpart say in
one line that the server must be stopped, and exit 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import bearer, make_execution
from tests.live_server import FLOWHISTORY, LiveServer, free_port, server_env

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FLOWHISTORY_SCHEDULER_ENABLED": "false"}
BOUND = 120.0  # safety bound for one command

# The sequence, in order (later ones see what earlier ones made). {flow} and {rule} name what the
# setup made; {key} and {group} are read from an earlier command's output in the same run.
SEQUENCE: list[str] = [
    "db current",
    "users list",
    "users create carol --role user --name Carol",
    "users set-role carol admin",
    "keys create carol --name laptop",
    "keys list",
    "keys revoke {key}",
    "groups create readers --member carol",
    "groups list",
    "groups set-members {group} carol owner",
    "alerts list",
    "alerts evaluate",
    "alerts transitions",
    "alerts transitions --rule {rule} --flow {flow}",
    "retention policy",
    "retention policy --set --max-age-days 30",
    "retention policy --flow {flow} --set --keep-last 3",
    "retention policy --flow {flow}",
    "retention dry-run",
    "retention dry-run --json --ids 2",
    "retention run",
    "retention compact",
    "retention restore --start 2000-01-01 --end 2100-01-01",
    "export status",
    "export run",
    "export status --json",
    "export compact",
    "jobs run alerts",
    "cleanup {flow} --keep 1",
    "users list",
]

NO_API = [
    "db upgrade",
    "db downgrade",
    "retention compact --offline",
    "retention policy --clear",
    "retention run --compact",
]

_MASKS = [
    (re.compile(r"sk-[0-9a-f]+"), "<KEY>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<TIME>"),
    (re.compile(r'"(duration_s|duration_ms|seconds)": [\d.]+'), r'"\1": <N>'),
    (re.compile(r"\d[\d,]*(\.\d+)? ?(ms|s|MB)\b"), "<N>"),
    # who made a change: the CLI's operator `cli` on the store, the admin key's user through the server
    (re.compile(r"\(by (cli|admin),"), "(by <WHO>,"),
    (re.compile(r"[─━│┃┏┓┗┛┡┩└┘┌┐├┤┼╇╈┳┻╋┠┨┯┷┴┬]+"), " "),
]


class Server(LiveServer):
    """A LiveServer whose process also gets ENV (the scheduler off: nothing runs on its own)."""

    def __init__(self, db: Path, name: str) -> None:
        super().__init__(db, name, env=ENV)


def cli(db: Path, command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWHISTORY, *command.split(), "--db", str(db)],
        env={**server_env(), **ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BOUND,
        stdin=subprocess.DEVNULL,
    )


def normal(text: str, folder: Path) -> str:
    text = text.replace(str(folder.resolve()), "<DATA>").replace(str(folder), "<DATA>")
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return " ".join(text.split())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store with an admin key, a flow with runs (two old), an alert rule: made by a server."""
    base = tmp_path_factory.mktemp("base")
    with Server(base / "store.duckdb", "setup") as server:
        h = bearer("owner")
        r = httpx.post(
            f"{server.url}/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=h
        )
        assert r.status_code == 200, r.text
        flow = r.json()["id"]
        for i in range(4):
            at = 1_600_000_000 + i if i < 2 else None  # two runs from 2020: old enough for any age policy
            body = make_execution(flow, **({"created_at": at, "updated_at": at} if at else {}))
            r = httpx.post(f"{server.url}/api/v1/flows/{flow}/executions", json=body, headers=h)
            assert r.status_code == 200, r.text
        rule = {
            "name": "errors",
            "metric": "failure_rate",
            "flow_id": flow,
            "window": "15m",
            "threshold": 0.5,
        }
        r = httpx.post(f"{server.url}/api/v1/alerts/rules", json=rule, headers=h)
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        server.stop()  # (SIGTERM; its exit code is item 10, graceful stop)
    assert (base / "admin_api_key").exists()
    return {"base": base, "flow": flow, "rule": rule_id}


def copy_of(world: dict[str, object], into: Path) -> Path:
    shutil.copytree(world["base"], into)  # type: ignore[arg-type]
    return into / "store.duckdb"


def run_sequence(db: Path, world: dict[str, object]) -> list[tuple[str, int, str, str]]:
    found: dict[str, object] = {"flow": world["flow"], "rule": world["rule"]}
    results = []
    for command in SEQUENCE:
        done = cli(db, command.format(**found))
        assert "Traceback" not in done.stderr, f"{command}: {done.stderr}"
        if command.startswith("keys create"):
            found["key"] = re.search(r"API key ([0-9a-f]{32})", " ".join(done.stderr.split()))[1]  # type: ignore[index]
        if command.startswith("groups create"):
            found["group"] = re.search(r"created group ([0-9a-f]{32})", done.stdout)[1]  # type: ignore[index]
        results.append((command, done.returncode, normal(done.stdout, db.parent), done.stderr))
    return results


def test_every_command_prints_the_same_through_the_server(world: dict[str, object], tmp_path: Path) -> None:
    local_db = copy_of(world, tmp_path / "local")
    served_db = copy_of(world, tmp_path / "served")
    local = run_sequence(local_db, world)
    with Server(served_db, "served") as server:
        served = run_sequence(served_db, world)
        assert httpx.get(f"{server.url}/health").status_code == 200
    for (command, code, out, stderr), (_, code_s, out_s, stderr_s) in zip(local, served, strict=True):
        assert code == 0, f"{command} (no server): {stderr}"
        assert code_s == 0, f"{command} (through the server): {stderr_s}"
        assert out_s == out, f"{command}:\nno server: {out}\nserved:    {out_s}"
    # the data changed as the commands said, both ways: a sanity check on what was compared
    outputs = dict((c, o) for c, _, o, _ in local)
    assert "carol" in outputs["users list"] and "deleted 1," in outputs["retention run"]  # keep-last 3 of 4


@pytest.fixture(scope="module")
def serving(world: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(copy_of(world, tmp_path_factory.mktemp("serving") / "data"), "serving") as server:
        yield server


@pytest.mark.parametrize("command", NO_API)
def test_commands_without_an_api_say_to_stop_the_server(serving: Server, command: str) -> None:
    before = cli(serving.db, "users list").stdout
    done = cli(serving.db, command)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    line = " ".join(done.stderr.split())
    assert f"the server at {serving.url} holds the store; stop it first" in line, done.stderr
    assert "Traceback" not in done.stderr
    assert cli(serving.db, "users list").stdout == before  # still served, nothing changed


def test_a_missing_or_wrong_admin_key_is_one_line(serving: Server, tmp_path: Path) -> None:
    key_file = serving.db.parent / "admin_api_key"
    done = cli(serving.db, "users list", env={"FLOWHISTORY_API_KEY": "sk-" + "0" * 32})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "refused the admin API key from FLOWHISTORY_API_KEY" in " ".join(done.stderr.split())
    saved = key_file.read_text()
    key_file.unlink()
    try:
        done = cli(serving.db, "keys list")
    finally:
        key_file.write_text(saved)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no admin API key" in " ".join(done.stderr.split()), done.stderr


def test_a_store_held_by_no_server_is_one_line(world: dict[str, object], tmp_path: Path) -> None:
    db = copy_of(world, tmp_path / "held")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        port = free_port()  # nothing listens there
        done = cli(db, "users list", env={"FLOWHISTORY_PORT": str(port)})
    finally:
        holder.communicate("", timeout=BOUND)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = " ".join(done.stderr.split())
    assert f"no flowhistory server answers at http://127.0.0.1:{port}" in line, done.stderr
