"""The `flowhistory` CLI against a temp store: migrations, users, keys, groups, tokens, cleanup.

Commands run in-process with typer's CliRunner (each opens and closes the store); what they
make is then checked through the app itself (a TestClient on the same store, opened after the
command closed it) or the library. Output is not a terminal here, so Rich lays it out for 80
columns, as in a pipe, a script or a CI log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analytics import flows, ingest, migrations, users
from analytics.access import Viewer
from analytics.config import Settings
from analytics.context import open_context
from analytics.store import Store
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
    assert ok(db, "db", "current").stdout.strip() == f"current: 0 (head: {head})"

    out = ok(db, "db", "upgrade").stdout
    for m in migrations.all_migrations():
        assert f"applied {m.version:04d} {m.name}" in out
    assert out.strip().endswith(f"current: {head}")
    assert ok(db, "db", "current").stdout.strip() == f"current: {head} (head: {head})"
    assert "current: " in ok(db, "db", "upgrade").stdout  # again: nothing to apply
    assert "applied" not in ok(db, "db", "upgrade").stdout

    out = ok(db, "db", "downgrade").stdout
    assert f"reverted {head:04d}" in out and out.strip().endswith(f"current: {head - 1}")
    assert "rollup_state" not in table_names(db)
    out = ok(db, "db", "downgrade", "--steps", str(head - 1 - 1)).stdout
    assert "reverted 0002 executions" in out and out.strip().endswith("current: 1")
    names = table_names(db)
    assert "executions" not in names and "execution_nodes" not in names
    assert {"users", "flows", "api_keys"} <= names

    assert ok(db, "db", "upgrade").stdout.strip().endswith(f"current: {head}")
    assert {"executions", "execution_nodes"} <= table_names(db)

    assert "unknown version" in refused(db, "db", "upgrade", "--to", str(head + 5))
    assert "at least 1" in refused(db, "db", "downgrade", "--steps", "0")
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
    assert "role must be one of admin, user, pending" in refused(
        db, "users", "create", "carol", "--role", "root"
    )
    assert "role must be one of admin, user, pending" in refused(
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
    assert "0 or more" in refused(db, "cleanup", flow.id, "--keep", "-1")
