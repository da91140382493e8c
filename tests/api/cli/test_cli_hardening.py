"""The CLI on what it was not built for: files it cannot open or write, values past any sense,
empty ids, markup in ids, a server behind a proxy (issue: CLI tracebacks and leaks).

Each refusal is one line `error: ...` on stderr and a non-zero exit, never a traceback. Commands
run in process (CliRunner). A store "held by a server" is held by a plain DuckDB connection in
another process (test_cli_errors.held) with a stub answering where the server would; the remote
tests that need the real API share one `flowhistory serve` per module.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from click.testing import Result
from typer.testing import CliRunner

from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from api.cli import app
from tests.api.cli import test_cli_errors as _errors
from tests.factories import SECRET
from tests.factories.retention import generate, make_flows
from tests.live_server import FLOWHISTORY, LiveServer

ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "80", "NO_COLOR": "1", "FLOWHISTORY_DISK_RESERVE": "1MiB"}
LINUX_PROC = pytest.mark.skipif(
    not Path("/proc/self").is_dir(), reason="needs /proc (no file can be made there)"
)

# a real store, and the same held by another process (as a server holds it)
store = _errors.store
held = _errors.held


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def refused(done: Result, code: int | None = None) -> str:
    """The command failed cleanly: non-zero (or `code`), no traceback, one `error:` line, last
    on stderr (after a progress bar's lines, if one ran)."""
    assert isinstance(done.exception, SystemExit), f"crashed: {done.exception!r}\n{done.output}"
    assert done.exit_code != 0 if code is None else done.exit_code == code, (done.exit_code, done.output)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    return errors[0]


# -- files the OS refuses: one line with the path, from the CLI's root group ---------------------


@LINUX_PROC
def test_a_backup_folder_no_file_can_be_written_in_is_refused_up_front(store: Path) -> None:
    line = refused(invoke("backup", "/proc/b.duckdb", "--db", str(store)), 1)
    assert line == "error: no file can be written in /proc: No such file or directory", line


def test_restoring_under_a_file_is_one_line(store: Path, tmp_path: Path) -> None:
    backup = tmp_path / "bk.duckdb"
    assert invoke("backup", str(backup), "--db", str(store)).exit_code == 0
    line = refused(invoke("restore", str(backup), "--db", str(store / "x.duckdb")), 1)
    assert line == f"error: {store}: File exists", line


@pytest.fixture
def not_stores(tmp_path: Path) -> list[Path]:
    """A text file and a folder, each given as --db."""
    text, folder = tmp_path / "out.log", tmp_path / "folder"
    text.write_text("a log, not a DuckDB file\n")
    folder.mkdir()
    return [text, folder]


@pytest.mark.parametrize(
    "command",
    [
        "users list",
        "db current",
        "db upgrade",
        "export status",
        "retention compact --offline",
        "backup {dest}",
        "restore {backup}",
    ],
)
def test_a_store_path_that_is_not_a_store_is_one_line(
    store: Path, tmp_path: Path, not_stores: list[Path], command: str
) -> None:
    backup = tmp_path / "bk.duckdb"
    assert invoke("backup", str(backup), "--db", str(store)).exit_code == 0
    for db in not_stores:
        args = command.format(dest=tmp_path / "b.duckdb", backup=backup).split()
        line = refused(invoke(*args, "--db", str(db)))
        assert str(db) in line, line


@LINUX_PROC
def test_a_store_that_cannot_be_created_is_one_line() -> None:
    assert "/proc/x.duckdb" in refused(invoke("users", "create", "x", "--db", "/proc/x.duckdb"))


@LINUX_PROC
def test_an_archive_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        generate(ctx, [make_flows(ctx, ["f"])["f"]], 20, days=400)
    assert invoke("retention", "policy", "--set", "--keep-last", "5", "--db", str(db)).exit_code == 0
    done = invoke("retention", "run", "--db", str(db), env={"FLOWHISTORY_ARCHIVE_DIR": "/proc/arch"})
    assert "/proc/arch" in refused(done, 1)


def test_export_status_with_half_the_s3_keys_is_one_line(store: Path) -> None:
    env = {"FLOWHISTORY_EXPORT_URL": "s3://bucket/prefix", "FLOWHISTORY_EXPORT_S3_SECRET_KEY": "x"}
    line = refused(invoke("export", "status", "--db", str(store), env=env), 1)
    assert line.startswith("error: cannot read the export's status: ValueError:") and "access_key" in line, (
        line
    )


@pytest.mark.parametrize(
    "saved", ["{not json", '""', "[1]", '{"jobs": [{}]}', '{"jobs": [1]}', '{"jobs": null}']
)
def test_a_job_status_file_the_server_did_not_write_is_one_line(store: Path, saved: str) -> None:
    (store.parent / "jobs.json").write_text(saved)
    line = refused(invoke("jobs", "--db", str(store)), 1)
    assert f"{store.parent / 'jobs.json'} is not a job status a server wrote" in line, line


# -- values past any sense -------------------------------------------------------------------------


def test_a_downgrade_of_more_steps_than_applied_is_refused(store: Path) -> None:
    head = migrations.head()
    line = refused(invoke("db", "downgrade", "--steps", "99999999999999999999", "--db", str(store)), 1)
    assert "--steps 99999999999999999999 is more than the" in line and "migrations applied" in line, line
    assert invoke("db", "current", "--db", str(store)).stdout.strip() == f"current: {head} (head: {head})"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("rule", ["--max-age-days", "--failed-max-age-days", "--payload-ttl-days"])
def test_a_retention_rule_of_nan_or_inf_days_is_a_usage_error(store: Path, rule: str, value: str) -> None:
    line = refused(invoke("retention", "policy", "--set", rule, value, "--db", str(store)), 2)
    assert f"Invalid value for '{rule}': {value} is not a number of days" in line, line


def test_a_token_lives_at_most_365_days(store: Path) -> None:
    line = refused(invoke("token", "alice", "--expires-in", "9" * 34, "--db", str(store)), 2)
    assert "at most 31536000 (365 days)" in line, line
    done = invoke("token", "alice", "--expires-in", "31536000", "--db", str(store))
    assert done.exit_code == 0, done.output
    claims = jwt.decode("".join(done.stdout.split()), SECRET, algorithms=["HS256"])
    assert claims["id"] == "alice"


# -- ids: empty or with control characters, refused before anything is asked -----------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["token", ""], "USER"),
        (["users", "create", ""], "USER"),
        (["users", "set-role", "", "admin"], "USER"),
        (["keys", "create", ""], "USER"),
        (["keys", "revoke", ""], "KEY_ID"),
        (["groups", "set-members", "", "admin"], "GROUP_ID"),
    ],
)
def test_an_empty_id_is_refused_up_front(store: Path, args: list[str], name: str) -> None:
    done = invoke(*args, "--db", str(store))
    assert f"error: {name} must not be empty" in refused(done, 2)
    assert done.stdout == "", "a token was printed"


@pytest.mark.parametrize("user", ["a\nb", "a\tb", "a\x1b[31mb"])
def test_a_token_for_an_id_with_control_characters_is_refused(store: Path, user: str) -> None:
    done = invoke("token", user, "--db", str(store))
    assert "error: USER must not hold control characters" in refused(done, 2)
    assert done.stdout == ""


class _NotTheApi(http.server.BaseHTTPRequestHandler):
    """What answered `PATCH /users/` (an empty id): a redirect; or a page that is not JSON."""

    status = 307

    def _answer(self) -> None:
        body = b"" if self.status == 307 else b"<html>not an API</html>"
        self.send_response(self.status)
        if self.status == 307:
            self.send_header("location", self.path + "/")
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [307, 200])
def test_an_answer_that_is_a_redirect_or_not_json_is_one_line(held: Path, status: int) -> None:
    handler = type("Stub", (_NotTheApi,), {"status": status})
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    (held.parent / "server.json").write_text(
        json.dumps({"url": url, "pid": os.getpid(), "db_path": str(held)})
    )
    try:
        done = invoke(
            "users", "set-role", "bob", "admin", "--db", str(held), env={"FLOWHISTORY_API_KEY": "sk-x"}
        )
    finally:
        stub.shutdown()
        stub.server_close()
    line = refused(done, 1)
    assert f"the server at {url}" in line and str(status) in line, line


# -- markup: ids and names are printed as given -----------------------------------------------------


def test_tables_in_a_pipe_print_ids_whole(store: Path) -> None:
    """rich fitted a table to 80 columns in a pipe and cut ids short ("01a1821b-0749-…")."""
    long_id = "user-" + "0123456789abcdef" * 5
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    made = subprocess.run(
        [FLOWHISTORY, "users", "create", long_id, "--db", str(store)], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr
    listed = subprocess.run(
        [FLOWHISTORY, "users", "list", "--db", str(store)], capture_output=True, text=True, env=env
    )
    assert long_id in listed.stdout, listed.stdout


@pytest.mark.parametrize("odd", ["[red]markup[/red]", ":smile:", "a[/b]c"])
def test_ids_and_names_are_printed_as_given(store: Path, odd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENV, "COLUMNS", "200")  # (tables unwrapped)
    db = ["--db", str(store)]
    assert f"created {odd} (user)" in invoke("users", "create", odd, *db).stdout
    assert odd in invoke("users", "list", *db).stdout
    assert f"{odd} is now admin" in invoke("users", "set-role", odd, "admin", *db).stdout
    made = invoke("keys", "create", odd, "--name", odd, *db)
    assert f" for {odd} (shown once)" in " ".join(made.stderr.split())
    assert invoke("keys", "list", *db).stdout.count(odd) == 2  # its user and its name
    assert f"({odd})" in invoke("groups", "create", odd, "--member", odd, *db).stdout
    assert f"{odd}, " not in invoke("groups", "list", *db).stdout  # one member
    assert invoke("groups", "list", *db).stdout.count(odd) == 2  # its name and its member


# -- through a real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db = tmp_path_factory.mktemp("served") / "store.duckdb"
    with LiveServer(db, "hardening", env={"FLOWHISTORY_SCHEDULER_ENABLED": "false"}) as server:
        assert (db.parent / "admin_api_key").is_file()
        yield server


class _Proxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy from the environment: it must never see the admin key (it answers 502)."""

    seen: list[str]

    def _answer(self) -> None:
        self.seen.append(f"{self.requestline} {self.headers.get('authorization')}")
        self.send_response(502)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_CONNECT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[dict[str, str | None], list[str]]]:
    """The environment naming a proxy for every request, and what it was sent."""
    seen: list[str] = []
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Proxy", (_Proxy,), {"seen": seen}))
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    env: dict[str, str | None] = {"NO_PROXY": None, "no_proxy": None}
    env |= {name: url for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")}
    try:
        yield env, seen
    finally:
        stub.shutdown()
        stub.server_close()


def test_backup_through_the_server_sends_the_key_to_no_proxy(
    serving: LiveServer, proxy: tuple[dict[str, str | None], list[str]], tmp_path: Path
) -> None:
    env, seen = proxy
    dest = tmp_path / "b.duckdb"
    done = invoke("backup", str(dest), "--db", str(serving.db), env=env)
    assert done.exit_code == 0, done.output
    assert "through the server" in done.stdout and dest.is_file()
    assert seen == []


def test_import_through_the_server_sends_the_key_to_no_proxy_and_says_why_it_was_refused(
    serving: LiveServer, proxy: tuple[dict[str, str | None], list[str]], tmp_path: Path
) -> None:
    env, seen = proxy
    report = tmp_path / "report.jsonl"
    done = invoke(
        "import", "openwebui", "--from", "", "--db", str(serving.db), "--report", str(report), env=env
    )
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: from: String should have at least 1 character (the server at {serving.url} answered 422)"
    ], done.stderr
    assert seen == []


def test_backup_through_the_server_takes_the_key_from_the_environment(
    serving: LiveServer, tmp_path: Path
) -> None:
    key_file = serving.db.parent / "admin_api_key"
    key = key_file.read_text().strip()
    aside = tmp_path / "admin_api_key"
    shutil.move(key_file, aside)
    try:
        dest = tmp_path / "b.duckdb"
        done = invoke("backup", str(dest), "--db", str(serving.db), env={"FLOWHISTORY_API_KEY": key})
    finally:
        shutil.move(aside, key_file)
    assert done.exit_code == 0, done.output
    assert dest.is_file()


@pytest.mark.parametrize(
    ("dest", "says"),
    [
        ("{tmp}/no/such/b.duckdb", "the folder {tmp}/no/such does not exist"),
        ("/proc/b.duckdb", "no file can be written in /proc: No such file or directory"),
    ],
)
def test_a_backup_dest_is_refused_before_the_server_copies(
    serving: LiveServer, tmp_path: Path, dest: str, says: str
) -> None:
    if dest.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    backups = serving.db.parent / "backups"
    before = set(backups.iterdir()) if backups.is_dir() else set()
    line = refused(invoke("backup", dest.format(tmp=tmp_path), "--db", str(serving.db)), 1)
    assert line == "error: " + says.format(tmp=tmp_path), line
    assert (set(backups.iterdir()) if backups.is_dir() else set()) == before, "the server made a copy"


def test_a_retention_rule_of_nan_days_is_refused_before_the_server_is_asked(serving: LiveServer) -> None:
    done = invoke("retention", "policy", "--set", "--max-age-days", "nan", "--db", str(serving.db))
    assert "Invalid value for '--max-age-days'" in refused(done, 2)


# -- backup: of the store as it is, never onto a link ------------------------------------------


def test_a_backup_of_a_store_below_head_leaves_it_there(tmp_path: Path) -> None:
    """Opening the store migrated it: a backup taken before an upgrade (as an operator would)
    upgraded the store it copied, schema and data, and was never of the store as it was."""
    db = tmp_path / "old.duckdb"
    assert invoke("db", "upgrade", "--to", "10", "--db", str(db)).exit_code == 0
    done = invoke("backup", str(tmp_path / "bk.duckdb"), "--db", str(db))
    assert done.exit_code == 0 and "schema 10" in done.stdout, done.output
    assert "current: 10" in invoke("db", "current", "--db", str(db)).stdout
    assert "current: 10" in invoke("db", "current", "--db", str(tmp_path / "bk.duckdb")).stdout
    # it restores as any older backup does: brought to head when next opened
    assert invoke("restore", str(tmp_path / "bk.duckdb"), "--db", str(tmp_path / "new.duckdb")).exit_code == 0
    open_context(Settings(db_path=tmp_path / "new.duckdb")).close()
    assert (
        f"current: {migrations.head()}"
        in invoke("db", "current", "--db", str(tmp_path / "new.duckdb")).stdout
    )


def test_a_backup_onto_a_dangling_symlink_is_refused(store: Path, tmp_path: Path) -> None:
    """`exists()` follows the link: the check passed, then the copy replaced the link (a
    server's backup, moved with a hard link, was refused and left a full copy behind)."""
    link = tmp_path / "dl"
    link.symlink_to(tmp_path / "nowhere" / "t")
    line = refused(invoke("backup", str(link), "--db", str(store)), 1)
    assert line == f"error: {link} exists; a backup never overwrites a file", line
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
