"""The CLI's error paths: one line whatever the width, rules without --set, a mistyped store path,
out-of-range ports.

Errors are parsed by scripts, so each must be one line on stderr even where Rich would wrap at 80
columns (a pipe, a CI log): in process (CliRunner: output is not a terminal) and as a subprocess
whose stderr is a pipe. No server is started: a store "held by a server" is held by a plain DuckDB
connection in another process, and a server that refuses the admin key is a stub answering 401 on
a port of 18950-18999.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

import pytest
from click.testing import Result
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from analytics.core.config import Settings
from api.cli import app
from tests.factories import SECRET
from tests.live_server import FLOWHISTORY, server_env

ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "80", "NO_COLOR": "1", "FLOWHISTORY_DISK_RESERVE": "1MiB"}
LONG = "a-rather-long-folder-name-so-that-every-message-runs-well-past-eighty-columns"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def subprocess_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWHISTORY, *args],
        env={**server_env(), **ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(stderr: str) -> str:
    """stderr is exactly one line, `error: ...`, longer than 80 columns (so it was not wrapped)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"not one line: {stderr!r}"
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A real store, in a folder with a long name (long messages)."""
    db = tmp_path / LONG / "store.duckdb"
    db.parent.mkdir()
    made = invoke("users", "create", "admin", "--role", "admin", "--db", str(db))
    assert made.exit_code == 0, made.output
    return db


@pytest.fixture
def held(store: Path) -> Iterator[Path]:
    """The store, held by another process (as a server holds it)."""
    code = (
        f"import duckdb, sys; c = duckdb.connect({str(store)!r}); print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield store
    finally:
        holder.communicate("", timeout=60)


# -- 1. errors are one line -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["db upgrade", "retention compact --offline", "db downgrade"])
def test_commands_refused_while_a_server_holds_the_store_say_so_in_one_line(held: Path, command: str) -> None:
    done = subprocess_cli(*command.split(), "--db", str(held))
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert "holds the store; stop it first (" in line and line.endswith(")")


def _port_in_our_range() -> int:
    for port in range(18950, 19000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 18950-18999")


class _Refuses(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"detail": "invalid API key"}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_api_key_is_one_line(held: Path) -> None:
    port = _port_in_our_range()
    stub = http.server.HTTPServer(("127.0.0.1", port), _Refuses)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    # where CLI commands find the server: this (live) process at the stub's address
    (held.parent / "server.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "db_path": str(held)})
    )
    try:
        done = subprocess_cli(
            "users", "list", "--db", str(held), env={"FLOWHISTORY_API_KEY": "sk-" + "0" * 32}
        )
    finally:
        stub.shutdown()
        stub.server_close()
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert f"the server at http://127.0.0.1:{port} refused the admin API key from FLOWHISTORY_API_KEY" in line


def test_library_errors_and_usage_errors_are_one_line_in_process(store: Path) -> None:
    cases = [
        ("users", "set-role", "someone-who-is-not-there-" + "x" * 60, "admin"),  # the library refuses
        ("token", "admin", "--expires-in", "0"),  # the command refuses
        ("db", "upgrade", "--to", "not-a-number-" + "x" * 70),  # click refuses the value
        ("retention", "policy", "--max-age-days", "7"),  # rules without --set
    ]
    for args in cases:
        done = invoke(*args, "--db", str(store))
        assert done.exit_code in (1, 2) and isinstance(done.exception, SystemExit), (args, done.output)
        line = one_error_line(done.stderr)
        assert len(line) > 80, line


def test_a_multi_line_message_is_printed_on_one_line() -> None:
    from api.cli.common import error  # (a DuckDB message, a server's answer: line breaks)

    captured = StringIO()
    with redirect_stderr(captured):
        error("first line\n  second line\nthird " + "x" * 100)
    assert captured.getvalue() == "error: first line second line third " + "x" * 100 + "\n"


# -- 2. retention policy: rules need --set ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--max-age-days", "7"], "rules need --set (--max-age-days given"),
        (["--keep-last", "5", "--no-archive"], "rules need --set (--keep-last, --no-archive given"),
        (["--flow", "f", "--payload-ttl-days", "3"], "rules need --set (--payload-ttl-days given"),
        (["--clear", "--keep-last", "5"], "--clear takes no rules (--keep-last)"),
        (["--set", "--clear"], "--set and --clear cannot go together"),
    ],
)
def test_retention_policy_rules_without_set_are_a_usage_error(
    store: Path, args: list[str], said: str
) -> None:
    done = invoke("retention", "policy", *args, "--db", str(store))
    assert done.exit_code == 2, done.output
    assert said in one_error_line(done.stderr)
    shown = invoke("retention", "policy", "--db", str(store))
    assert shown.exit_code == 0 and "global: no policy" in shown.stdout  # nothing was set or cleared


def test_retention_policy_set_show_clear_still_work(store: Path) -> None:
    made = invoke("retention", "policy", "--set", "--max-age-days", "7", "--no-archive", "--db", str(store))
    assert made.exit_code == 0, made.output
    assert "max_age_days=7.0, archive=False" in made.stdout
    assert "max_age_days=7.0" in invoke("retention", "policy", "--db", str(store)).stdout
    cleared = invoke("retention", "policy", "--clear", "--db", str(store))
    assert cleared.exit_code == 0 and "no policy" in cleared.stdout


# -- 3. a path with no store ----------------------------------------------------------------------

# Commands that may create a store (they add to one, or put one in place), and those that do not
# open it for writing; every other command needs an existing store.
MAY_CREATE = {
    ("serve",),
    ("db", "upgrade"),
    ("users", "create"),
    ("groups", "create"),
    ("import", "openwebui"),
    ("restore",),
    ("retention", "policy"),  # with --set; without it, it only reads (below)
}
NO_STORE_NEEDED = {("token",), ("sql",), ("jobs",), ("backup",)}  # backup refuses a missing store itself
NEEDS_A_STORE = [
    "db current",
    "db downgrade",
    "users list",
    "users set-role alice admin",
    "keys create alice",
    "keys list",
    "keys revoke k",
    "groups list",
    "groups set-members g alice",
    "cleanup f --keep 1",
    "jobs run export",
    "export run",
    "export compact",
    "export status",
    "retention policy",
    "retention policy --flow f",
    "retention policy --clear",
    "retention dry-run",
    "retention run",
    "retention compact",
    "retention compact --offline",
    "retention restore --start 2020-01-01 --end 2021-01-01",
    "alerts list",
    "alerts evaluate",
    "alerts transitions",
]


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))
            if command.invoke_without_command:
                yield (*path, name)
        else:
            yield (*path, name)


def test_every_command_is_classified() -> None:
    """A new command must be put in one of the lists above (and so get a test here)."""
    root = get_command(app)
    assert isinstance(root, TyperGroup)
    commands = set(_commands(root))
    tested = set()
    for line in NEEDS_A_STORE:
        words = tuple(line.split())
        tested.add(next(words[:k] for k in (2, 1) if words[:k] in commands))
    unclassified = commands - MAY_CREATE - NO_STORE_NEEDED - tested
    assert not unclassified, f"say whether these may create a store: {sorted(unclassified)}"


@pytest.mark.parametrize("command", NEEDS_A_STORE)
def test_a_command_on_a_path_with_no_store_says_so_and_creates_nothing(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for db in (folder / "tpyo.duckdb", folder / "no" / "such" / "folder" / "store.duckdb"):
        done = invoke(*command.split(), "--db", str(db))
        assert done.exit_code == 1, (command, done.output, done.exception)
        assert isinstance(done.exception, SystemExit), done.exception
        line = one_error_line(done.stderr)
        assert f"there is no store at {db}" in line
        assert done.stdout == ""
    assert list(folder.iterdir()) == [], f"{command} created {list(folder.iterdir())}"


def test_the_store_path_from_the_environment_too(tmp_path: Path) -> None:
    db = tmp_path / "typo" / ".." / "tpyo.duckdb"
    done = subprocess_cli("db", "current", env={"FLOWHISTORY_DB_PATH": str(db)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"there is no store at {db}" in one_error_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_commands_that_add_still_create_a_store(tmp_path: Path) -> None:
    for n, command in enumerate(
        ["db upgrade", "users create alice", "groups create team", "retention policy --set"]
    ):
        db = tmp_path / f"new{n}" / "store.duckdb"
        done = invoke(*command.split(), "--db", str(db))
        assert done.exit_code == 0, (command, done.output)
        assert db.exists()
        assert invoke("db", "current", "--db", str(db)).exit_code == 0


def test_an_unknown_job_is_named_before_the_missing_store(tmp_path: Path) -> None:
    done = invoke("jobs", "run", "nope", "--db", str(tmp_path / "none.duckdb"))
    assert done.exit_code == 1 and "no job named 'nope'" in one_error_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


# -- 4. ports ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["83986", "65536", "0", "-1", "abc"])
def test_serve_refuses_a_port_out_of_range(held: Path, port: str) -> None:
    """At parse time, before the store is looked at: nothing bound, no server.json written. (The
    store is held by another process, so that even a serve that let the port through binds none.)"""
    for args, env, named in (
        (["--port", port], {}, "'--port'"),
        ([], {"FLOWHISTORY_PORT": port}, "FLOWHISTORY_PORT"),
    ):
        done = invoke("serve", *args, "--db", str(held), env=env)
        assert done.exit_code == 2, (args, env, done.output, done.exception)
        line = one_error_line(done.stderr)
        assert named in line and "holds" not in line, line
    assert not (held.parent / "server.json").exists()


@pytest.mark.parametrize("variable", ["FLOWHISTORY_PORT", "FLOWHISTORY_METRICS_PORT"])
def test_a_port_variable_out_of_range_is_refused_by_every_command(tmp_path: Path, variable: str) -> None:
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env={variable: "83986"})
    assert done.exit_code == 2, (done.output, done.exception)
    assert isinstance(done.exception, SystemExit), done.exception
    line = one_error_line(done.stderr)
    assert f"{variable}=83986" in line and "65535" in line
    assert list(tmp_path.iterdir()) == []


def test_settings_bound_the_port() -> None:
    assert Settings(port=0).port == 0  # in-process servers (tests) bind any free port
    with pytest.raises(ValueError, match="65535"):
        Settings(port=83986)
    with pytest.raises(ValueError):
        Settings(port=-1)
