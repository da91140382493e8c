"""Nobody can leave the store without an admin: demoting the last admin is a 409.

Demoting oneself while other admins remain stays allowed. The check runs on the writer, in the
transaction of the change, so two demotions racing for the last two admins leave one.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analytics.access import users
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import Conflict
from api.cli import app as cli
from tests.factories import SECRET, World, bearer

WAIT = 30.0  # a safety net for the waits below, never what a test asserts


def admins(ctx: Context) -> set[str]:
    stored = ctx.store.read(lambda c: c.execute("SELECT id FROM users WHERE role = 'admin'").fetchall())
    in_memory = {u.id for u in ctx.directory.users() if u.role == "admin"}
    assert {r[0] for r in stored} == in_memory  # the directory reloaded after every commit
    return in_memory


@pytest.mark.parametrize("role", ["pending", "user"])
def test_the_only_admin_cannot_demote_itself(world: World, role: str) -> None:
    assert admins(world.ctx) == {"admin"}
    r = world.client.patch("/api/v1/users/admin", json={"role": role}, headers=bearer("admin"))
    assert r.status_code == 409, r.text
    assert "last admin" in r.json()["detail"]
    assert admins(world.ctx) == {"admin"}
    # still an admin, in the answers too
    assert world.client.get("/api/v1/users", headers=bearer("admin")).status_code == 200
    # keeping the role is no demotion
    r = world.client.patch("/api/v1/users/admin", json={"role": "admin"}, headers=bearer("admin"))
    assert r.status_code == 200 and r.json()["role"] == "admin"


def test_an_admin_may_step_down_while_another_remains(world: World) -> None:
    h = bearer("admin")
    assert world.client.patch("/api/v1/users/owner", json={"role": "admin"}, headers=h).status_code == 200
    users.create_api_key(world.ctx, "owner")  # else admin holds the last admin key: see below
    r = world.client.patch("/api/v1/users/admin", json={"role": "user"}, headers=h)
    assert r.status_code == 200 and r.json()["role"] == "user"
    assert admins(world.ctx) == {"owner"}
    # owner is now the last one: neither it nor anyone can demote it
    r = world.client.patch("/api/v1/users/owner", json={"role": "pending"}, headers=bearer("owner"))
    assert r.status_code == 409, r.text
    assert admins(world.ctx) == {"owner"}


def test_two_racing_demotions_leave_one_admin(ctx: Context) -> None:
    """Both demotions are queued while the writer is held, so any check made before the queue
    (both would see two admins) passes twice; only a check on the writer refuses one."""
    users.create_user(ctx, "a", role="admin")
    users.create_user(ctx, "b", role="admin")
    assert admins(ctx) == {"a", "b"}
    release = threading.Event()
    held = ctx.store.submit(lambda _: release.wait(WAIT))
    queued = ctx.store._queue  # private, read only to know both demotions wait behind `held`
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(users.set_role, ctx, uid, "user") for uid in ("a", "b")]
        for _ in range(int(WAIT / 0.01)):
            if queued.qsize() >= 2:
                break
            threading.Event().wait(0.01)
        release.set()
        held.result()
        outcomes = [f.exception(timeout=WAIT) for f in futures]
    assert sorted(type(e).__name__ for e in outcomes) == ["Conflict", "NoneType"], outcomes
    assert len(admins(ctx)) == 1


def test_the_cli_refuses_too(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    env = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "200", "NO_COLOR": "1"}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--db", str(db)], env=env)

    assert run("users", "create", "bob", "--role", "admin").exit_code == 0
    assert run("users", "create", "alice").exit_code == 0
    refused = run("users", "set-role", "bob", "pending")
    assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
    assert "last admin" in " ".join(refused.stderr.split())
    assert run("users", "set-role", "alice", "admin").exit_code == 0
    assert run("users", "set-role", "bob", "pending").exit_code == 0
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        assert admins(ctx) == {"alice"}
        with pytest.raises(Conflict):
            users.set_role(ctx, "alice", "user")


def test_the_last_key_an_admin_holds_cannot_be_revoked(world: World) -> None:
    """Revoked, no admin could call the API, nor the CLI through the running server (which uses
    the admin's key): schemathesis did it, and every later request was a 401."""
    ctx = world.ctx
    [bootstrap] = users.list_api_keys(ctx, user_id="admin")  # the key made at the first start
    r = world.client.delete(f"/api/v1/keys/{bootstrap.id}", headers=bearer("admin"))
    assert r.status_code == 409, r.text
    assert "last key an admin holds" in r.json()["detail"]
    assert users.list_api_keys(ctx, user_id="admin") == [bootstrap]
    _, second = users.create_api_key(ctx, "admin", name="second")
    r = world.client.delete(f"/api/v1/keys/{bootstrap.id}", headers=bearer("admin"))
    assert r.status_code in (200, 204), r.text  # another key is there now
    assert users.list_api_keys(ctx, user_id="admin") == [second]
    _, mine = users.create_api_key(ctx, "owner")  # a plain user's last key goes as before
    assert world.client.delete(f"/api/v1/keys/{mine.id}", headers=bearer("admin")).status_code in (200, 204)


def test_demoting_the_admin_who_holds_the_last_admin_key_is_refused(world: World) -> None:
    """The key guard was passed by the side door: revoke the first admin's key while a second
    admin held one, then demote that second admin: no admin held a key."""
    ctx = world.ctx
    [bootstrap] = users.list_api_keys(ctx, user_id="admin")
    users.create_user(ctx, "carol", role="admin")
    _, carols = users.create_api_key(ctx, "carol")
    assert world.client.delete(f"/api/v1/keys/{bootstrap.id}", headers=bearer("admin")).status_code == 200
    r = world.client.patch("/api/v1/users/carol", json={"role": "user"}, headers=bearer("admin"))
    assert r.status_code == 409, r.text
    assert "last API key an admin holds" in r.json()["detail"]
    assert admins(ctx) == {"admin", "carol"}
    users.create_api_key(ctx, "admin")  # with another admin's key, carol may go
    r = world.client.patch("/api/v1/users/carol", json={"role": "user"}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    assert [k.id for k in users.list_api_keys(ctx, user_id="carol")] == [carols.id]
