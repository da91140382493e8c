"""The `flowhistory` CLI against a temp store: migrations, users, keys, groups, tokens, cleanup.

Commands run in-process with typer's CliRunner (each opens and closes the store); what they
make is then checked through the app itself (a TestClient on the same store, opened after the
command closed it) or the library. Output is not a terminal here, so Rich lays it out for 80
columns, as in a pipe, a script or a CI log.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import jwt
import pytest
import typer
from click.testing import Result
from fastapi.testclient import TestClient
from typer.core import TyperGroup
from typer.testing import CliRunner

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.store import Store
from analytics.flows import registry as flows
from analytics.history import ingest
from api.app import create_app
from api.cli import app
from tests.factories import SECRET, make_execution

KEY = re.compile(r"^sk-[0-9a-f]{32}$")
ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "80", "NO_COLOR": "1"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


def run(db: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, [*args, "--db", str(db)], env=env or ENV)


def ok(db: Path, *args: str) -> Result:
    result = run(db, *args)
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result


def refused(db: Path, *args: str) -> str:
    """A command that must fail cleanly: non-zero, a message on stderr, no traceback."""
    result = run(db, *args)
    assert result.exit_code != 0, f"{args} succeeded: {result.output}"
    assert isinstance(result.exception, SystemExit), f"{args} crashed: {result.exception!r}"
    message = " ".join(result.stderr.split())
    assert message.startswith("error:"), result.output
    return message


@contextmanager
def server(db: Path, secret: str | None = SECRET) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(db_path=db, webui_secret_key=secret))) as client:
        yield client


def me(client: TestClient, credential: str) -> tuple[int, str | None]:
    r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {credential}"})
    return r.status_code, (r.json().get("id") if r.status_code == 200 else None)


def table_names(db: Path) -> set[str]:
    with Store(db) as store:
        return {
            r[0]
            for r in store.read(
                lambda c: c.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                ).fetchall()
            )
        }


def test_db_current_upgrade_downgrade(db: Path) -> None:
    head = migrations.head()
    assert "there is no store at" in refused(db, "db", "current")  # it reads: it creates none
    assert not db.exists()
    Store(db).close()  # an empty store, at version 0
    assert ok(db, "db", "current").stdout.strip() == f"current: 0 (head: {head})"

    out = ok(db, "db", "upgrade").stdout
    for m in migrations.all_migrations():
        assert f"applied {m.version:04d} {m.name}" in out
    assert out.strip().endswith(f"current: {head}")
    assert ok(db, "db", "current").stdout.strip() == f"current: {head} (head: {head})"
    assert "current: " in ok(db, "db", "upgrade").stdout  # again: nothing to apply
    assert "applied" not in ok(db, "db", "upgrade").stdout

    # by position, not number: a version may be missing while another branch holds it
    every = migrations.all_migrations()
    out = ok(db, "db", "downgrade").stdout
    assert f"reverted {head:04d}" in out and out.strip().endswith(f"current: {every[-2].version}")
    out = ok(db, "db", "downgrade", "--steps", str(len(every) - 2)).stdout
    assert "reverted 0002 executions" in out and out.strip().endswith("current: 1")
    names = table_names(db)
    assert "executions" not in names and "execution_nodes" not in names
    assert {"users", "flows", "api_keys"} <= names

    assert ok(db, "db", "upgrade").stdout.strip().endswith(f"current: {head}")
    assert {"executions", "execution_nodes"} <= table_names(db)

    assert f"no such version; head is {head}" in refused(db, "db", "upgrade", "--to", str(head + 5))
    assert "'--steps': Input should be greater than or equal to 1" in refused(
        db, "db", "downgrade", "--steps", "0"
    )
    assert ok(db, "db", "current").stdout.strip() == f"current: {head} (head: {head})"


def test_users_create_list_set_role(db: Path) -> None:
    assert "created alice (user)" in ok(db, "users", "create", "alice").stdout
    ok(db, "users", "create", "bob", "--role", "admin", "--name", "Bob B")
    listing = ok(db, "users", "list").stdout
    rows = {line.split("│")[1].strip(): line for line in listing.splitlines() if line.count("│") > 2}
    assert "user" in rows["alice"] and "admin" in rows["bob"] and "Bob B" in rows["bob"]

    token = ok(db, "token", "alice").stdout
    token = "".join(token.split())
    with server(db) as client:
        assert me(client, token) == (200, "alice")
    assert "alice is now pending" in ok(db, "users", "set-role", "alice", "pending").stdout
    with server(db) as client:
        assert me(client, token)[0] == 401  # a pending user is not let in
    ok(db, "users", "set-role", "alice", "admin")
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert {u.id: u.role for u in users.list_users(ctx)} == {"alice": "admin", "bob": "admin"}


def test_users_bad_input_is_refused_with_a_message(db: Path) -> None:
    ok(db, "users", "create", "alice")
    # typer's choice (exit 2), before the library's "role must be one of ..." (exit 1)
    assert "'root' is not one of 'admin', 'user', 'pending'" in refused(
        db, "users", "create", "carol", "--role", "root"
    )
    assert "'superuser' is not one of 'admin', 'user', 'pending'" in refused(
        db, "users", "set-role", "alice", "superuser"
    )
    assert "not found" in refused(db, "users", "set-role", "nobody", "user")
    assert "already exists" in refused(db, "users", "create", "alice")
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert {u.id: u.role for u in users.list_users(ctx)} == {"alice": "user"}


def test_keys_create_list_revoke(db: Path) -> None:
    ok(db, "users", "create", "alice")
    created = ok(db, "keys", "create", "alice", "--name", "laptop")
    key = created.stdout.strip()
    assert KEY.match(key), created.stdout
    key_id = re.search(r"API key ([0-9a-f]{32}) for", " ".join(created.stderr.split()))
    assert key_id, created.stderr
    assert key not in created.stderr

    listing = ok(db, "keys", "list").stdout
    assert key not in listing and key[7:] not in listing and key[3:] not in listing
    assert key[:7] in listing and "laptop" in listing

    with server(db) as client:
        assert me(client, key) == (200, "alice")
    assert f"revoked {key_id[1]}" in ok(db, "keys", "revoke", key_id[1]).stdout
    with server(db) as client:
        assert me(client, key)[0] == 401
    assert "not found" in refused(db, "keys", "revoke", key_id[1])
    assert "not found" in refused(db, "keys", "create", "nobody")


def test_keys_list_shows_whole_ids_to_revoke_by(db: Path) -> None:
    ok(db, "users", "create", "alice")
    key_id = re.search(
        r"API key ([0-9a-f]{32}) for", " ".join(ok(db, "keys", "create", "alice").stderr.split())
    )
    assert key_id
    # `keys revoke KEY_ID` needs the id; `keys list` is where an operator finds it
    assert key_id[1] in ok(db, "keys", "list").stdout


def test_groups_create_list_set_members(db: Path) -> None:
    out = ok(db, "groups", "create", "readers", "--member", "alice", "--member", "bob").stdout
    found = re.search(r"created group ([0-9a-f]{32}) \(readers\)", out)
    assert found, out
    group_id = found[1]
    listing = ok(db, "groups", "list").stdout
    assert group_id in listing and "alice, bob" in listing

    assert "carol" in ok(db, "groups", "set-members", group_id, "carol").stdout
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert [(g.id, g.name, g.user_ids) for g in users.list_groups(ctx)] == [
            (group_id, "readers", ("carol",))
        ]
        assert ctx.directory.groups_of("carol") == {group_id}
        assert ctx.directory.groups_of("alice") == frozenset()
    assert "not found" in refused(db, "groups", "set-members", "no-such-group", "carol")


def test_token_prints_a_jwt_that_authenticates(db: Path) -> None:
    out = ok(db, "token", "alice").stdout
    token = "".join(out.split())
    with server(db) as client:
        assert me(client, token) == (200, "alice")  # signed with WEBUI_SECRET_KEY; alice made on sight
    # `TOKEN=$(flowhistory token alice)` must give the token, not the token broken over lines
    assert out.strip() == token, f"the token is wrapped over {len(out.strip().splitlines())} lines"


def test_token_without_a_secret_uses_the_one_kept_beside_the_store(db: Path) -> None:
    env: dict[str, str | None] = {**ENV, "WEBUI_SECRET_KEY": None, "COLUMNS": "1000"}
    # a store first: with neither a store nor a secret there, `token` refuses (a mistyped --db)
    assert run(db, "db", "upgrade", env=env).exit_code == 0
    assert not (db.parent / ".webui_secret_key").exists()
    token = "".join(run(db, "token", "alice", env=env).stdout.split())
    assert (db.parent / ".webui_secret_key").exists()
    with server(db, secret=None) as client:  # the server finds the same secret file
        assert me(client, token) == (200, "alice")
    with server(db, secret="another-secret-entirely-0123456789") as client:
        assert me(client, token)[0] == 401


def test_cleanup_keeps_the_newest_n(db: Path) -> None:
    settings = Settings(db_path=db, webui_secret_key=SECRET)
    owner = Viewer("owner", "user")
    with open_context(settings) as ctx:
        users.create_user(ctx, "owner")
        flow = flows.create_flow(ctx, owner, name="f", nodes=[], edges=[])
        other = flows.create_flow(ctx, owner, name="other", nodes=[], edges=[])
        for i in range(8):
            ingest.save_execution(ctx, owner, make_execution(flow.id, execution_time=i), flow_id=flow.id)
        ingest.save_execution(ctx, owner, make_execution(other.id), flow_id=other.id)
        newest = ctx.store.read(
            lambda c: c.execute(
                "SELECT id::VARCHAR FROM executions WHERE flow_id = ? ORDER BY created_at DESC, id DESC LIMIT 3",
                [flow.id],
            ).fetchall()
        )

    assert f"deleted 5 executions of {flow.id}" in ok(db, "cleanup", flow.id, "--keep", "3").stdout
    with open_context(settings) as ctx:
        kept = ctx.store.read(
            lambda c: c.execute(
                "SELECT id::VARCHAR FROM executions WHERE flow_id = ? ORDER BY created_at DESC, id DESC",
                [flow.id],
            ).fetchall()
        )
        assert kept == newest
        nodes = ctx.store.read(
            lambda c: c.execute(
                "SELECT count(DISTINCT execution_id) FROM execution_nodes WHERE flow_id = ?", [flow.id]
            ).fetchall()[0][0]
        )
        assert nodes == 3, "node facts of deleted runs were left behind"
        assert ctx.counters.stats(other.id).total_executions == 1  # another flow is untouched
    assert "deleted 0 executions" in ok(db, "cleanup", flow.id, "--keep", "3").stdout
    assert "'--keep': Input should be greater than or equal to 0" in refused(
        db, "cleanup", flow.id, "--keep", "-1"
    )


def test_cleanup_of_an_unknown_flow_is_refused(db: Path) -> None:
    settings = Settings(db_path=db, webui_secret_key=SECRET)
    owner = Viewer("owner", "user")
    with open_context(settings) as ctx:
        users.create_user(ctx, "owner")
        flow = flows.create_flow(ctx, owner, name="f", nodes=[], edges=[])
        for _ in range(3):
            ingest.save_execution(ctx, owner, make_execution(flow.id), flow_id=flow.id)
    message = refused(db, "cleanup", "no-such-flow", "--keep", "5")
    assert "no-such-flow" in message and "unknown flow" in message, message
    assert "deleted 0" not in message and "deleted 0" not in run(db, "cleanup", "no-such-flow").stdout
    with open_context(settings) as ctx:
        assert ctx.counters.stats(flow.id).total_executions == 3  # nothing else was touched


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})


def test_token_expires_in_30_days_by_default(db: Path) -> None:
    before = int(time.time())
    token = "".join(ok(db, "token", "alice").stdout.split())
    after = int(time.time())
    exp = _claims(token)["exp"]
    assert isinstance(exp, int) and before + 30 * 86_400 <= exp <= after + 30 * 86_400
    with server(db) as client:
        assert me(client, token) == (200, "alice")


def test_token_expires_in_seconds_given(db: Path) -> None:
    before = int(time.time())
    token = "".join(ok(db, "token", "alice", "--expires-in", "90").stdout.split())
    exp = _claims(token)["exp"]
    assert isinstance(exp, int) and before + 90 <= exp <= int(time.time()) + 90


@pytest.mark.parametrize("seconds", ["0", "-5", "-2592000"])
def test_token_with_a_non_positive_lifetime_is_refused(db: Path, seconds: str) -> None:
    result = run(db, "token", "alice", "--expires-in", seconds)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert result.stdout == "", "a token was printed"
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and "--expires-in" in message and "positive" in message, message


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_help_shows_no_type_placeholder_for_flags() -> None:
    """A flag takes no value: `--json <bool>` reads as if it wanted one."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    paths = list(_commands(root))
    assert ("export", "status") in paths and ("retention", "policy") in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={**ENV, "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout, f"flowhistory {' '.join(path)} --help:\n{result.stdout}"
        assert "--help" in result.stdout
    policy = CliRunner().invoke(app, ["retention", "policy", "--help"], env={**ENV, "COLUMNS": "200"})
    assert "--set" in policy.stdout and "--no-archive" in policy.stdout and "<float>" in policy.stdout


# -- every `flowhistory ...` a user is told to run must be a real command ---------------------

ROOT = Path(__file__).resolve().parents[3]
_CODE_LINE = re.compile(r"(?:^|[\s/])(flowhistory\s.*)$")  # a shell line in a fenced block or the Makefile


def _mention_sources() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "Makefile", *ROOT.glob("docs/*.md")]
    docs += ROOT.glob("bench/*.md")
    for pattern in (
        "analytics/**/*.py",
        "api/**/*.py",
        "api/static/**/*.js",
        "api/static/*.html",
        "bench/*.py",
    ):
        docs += ROOT.glob(pattern)
    return sorted(p for p in docs if p.is_file())


def _mentions(path: Path) -> Iterator[tuple[str, str]]:
    """(where, command line) for each mention: inline code anywhere, and shell lines in
    fenced blocks of Markdown and in the Makefile (their trailing comment or description cut)."""
    fenced = path.suffix == ".md"
    in_block = path.name == "Makefile"  # all shell; Python and JS only through code spans
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for span in line.split("`")[1:-1:2]:  # code spans, paired within the line
            if span.startswith("flowhistory "):
                yield f"{path.relative_to(ROOT)}:{number}", " ".join(span.split())
        if fenced and line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block and (found := _CODE_LINE.search(line)) and "`" not in line:
            command = re.split(r"\s#|\s{3,}", found[1])[0]
            yield f"{path.relative_to(ROOT)}:{number}", command.strip()


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _unresolved(command: str, root: TyperGroup) -> str | None:
    """Why `flowhistory A B ...` (alternatives joined by `|`) names no command, or None."""
    words = _tokens(command)[1:]
    alternatives: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            alternatives.append([])
        else:
            alternatives[-1].append(word)
    parent = root
    for n, alternative in enumerate(alternatives):
        start = root if n == 0 else parent
        cmd: Any = start
        owner = start
        rest = list(alternative)
        while isinstance(cmd, TyperGroup) and rest and rest[0] in cmd.commands:
            owner, cmd = cmd, cmd.commands[rest.pop(0)]
        if n > 0 and cmd is start and start is not root and isinstance(cmd, TyperGroup):
            cmd, owner, rest = root, root, list(alternative)  # `jobs | jobs run NAME`: from the top
            while isinstance(cmd, TyperGroup) and rest and rest[0] in cmd.commands:
                owner, cmd = cmd, cmd.commands[rest.pop(0)]
        if n == 0:
            parent = owner
        if isinstance(cmd, TyperGroup):
            if rest[:1] == ["..."]:
                continue
            if not cmd.invoke_without_command:
                return f"{' '.join(alternative) or command!r} is a group: say which of {sorted(cmd.commands)}"
            if rest and not rest[0].startswith(("-", "[")):
                return f"{rest[0]!r} is not a command of {cmd.name} (it has {sorted(cmd.commands)})"
        options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for word in rest:
            option = word.strip("[]").split("=")[0]
            if option.startswith("--") and option not in options | {"--help"}:
                return f"{cmd.name} has no option {option} (it has {sorted(options)})"
    return None


def test_every_command_users_are_told_to_run_exists() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    found = [(where, command) for path in _mention_sources() for where, command in _mentions(path)]
    said = {command for _, command in found}
    # the extractor sees what it must: the README's CLI block, inline docs, and code messages
    assert any(c.startswith("flowhistory export run") for c in said), said
    assert any(w.startswith("docs/retention.md") for w, _ in found) and any(
        w.startswith("api/cli/") for w, _ in found
    )
    assert len(found) >= 30, found
    wrong = [
        f"{where}: `{command}`: {why}" for where, command in found if (why := _unresolved(command, root))
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("command", "ok_"),
    [
        ("flowhistory export", False),
        ("flowhistory export run", True),
        ("flowhistory exports run", False),
        ("flowhistory jobs", True),
        ("flowhistory jobs | jobs run NAME", True),
        ("flowhistory db upgrade [--to N] | downgrade [--steps 1] | current", True),
        ("flowhistory db upgrade | downgrade | status", False),
        ("flowhistory token USER [--expires-in S]", True),
        ("flowhistory token USER --expiry 5", False),
        ("flowhistory retention ...", True),
    ],
)
def test_the_mention_checker_itself(command: str, ok_: bool) -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    assert (_unresolved(command, root) is None) is ok_, _unresolved(command, root)


@pytest.mark.parametrize("odd", ["[/bold]", "[red]x[/red]", "a[/b]c"])
def test_messages_print_ids_as_given_not_as_markup(db: Path, odd: str) -> None:
    """Rich reads `[...]` in a message as markup: `[/x]` crashed the print, `[red]` vanished."""
    ok(db, "db", "upgrade")  # (cleanup and set-role need a store)
    assert f"unknown flow {odd}:" in refused(db, "cleanup", odd, "--keep", "1")
    assert f"user {odd} not found" in refused(db, "users", "set-role", odd, "user")


def test_a_retention_pass_run_from_the_cli_is_recorded_as_the_clis(db: Path) -> None:
    """`jobs run retention` runs the scheduler's job: its record said `api`, as the API's."""
    ok(db, "users", "create", "admin", "--role", "admin")
    ok(db, "jobs", "run", "retention")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT trigger FROM retention_runs").fetchall() == [("cli",)]
