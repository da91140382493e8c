"""The poller against what the adversarial report found: a flow re-owned to a user id Open WebUI
does not have yet, an owner read as NULL for a while, a change made without `updated_at`, and
requests while Open WebUI's database cannot be read (503, not a 404 that loses a run or a 401).
Both dialects, on real databases; the poller is driven by hand where the outcome of each poll is
the test's to decide."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.history import ingest
from analytics.openwebui.sync import OpenWebUISync
from api.app import create_app
from tests.factories import SECRET, bearer, make_execution
from tests.openwebui.test_mode import API_KEY, within
from tests.openwebui.webui_db import WebUIDb

ADMIN = Viewer("boss", "admin")
OLD = 1_700_000_000  # stamps far in the past: a flow is not re-read as recently changed


@pytest.fixture
def poller(webui_db: WebUIDb, tmp_path: Path) -> Iterator[tuple[OpenWebUISync, Context, WebUIDb]]:
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice", "user")
    webui_db.add_user("bob", "user")
    settings = Settings(db_path=tmp_path / "store.duckdb", openwebui_db=webui_db.url, openwebui_poll_s=3600.0)
    with open_context(settings) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            yield sync, ctx, webui_db
        finally:
            sync.db.close()


def _runs(ctx: Context, fid: str, n: int = 3) -> None:
    results = ingest.save_executions(ctx, ADMIN, [make_execution(fid, user_id="alice") for _ in range(n)])
    assert all(r.status == "stored" for r in results), results


def _stored(ctx: Context, fid: str) -> int:
    [(n,)] = ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [fid]).fetchall()
    )
    return int(n)


@pytest.mark.parametrize("how", ["re-created", "in-place"])
def test_a_flow_taken_by_a_user_open_webui_does_not_have_yet_gets_no_old_runs(
    poller: tuple[OpenWebUISync, Context, WebUIDb], how: str
) -> None:
    """The runs were deleted only when the new owner was a user at that poll: zoe, made a user
    later, then read alice's runs."""
    sync, ctx, db = poller
    fid = db.add_flow("alice", access_control={})
    sync.sync_once()
    _runs(ctx, fid)
    if how == "re-created":
        db.delete_flow(fid)
        db.add_flow("zoe", flow_id=fid, access_control={})
    else:
        db.update_flow(fid, user_id="zoe")
    sync.sync_once()
    assert _stored(ctx, fid) == 0  # deleted before the flow is shown as zoe's
    db.add_user("zoe", "user")
    sync.sync_once()
    assert _stored(ctx, fid) == 0
    assert ctx.directory.flow(fid).owner_id == "zoe"  # type: ignore[union-attr]


def test_an_owner_read_as_null_for_a_while_deletes_nothing(
    poller: tuple[OpenWebUISync, Context, WebUIDb], tmp_path: Path
) -> None:
    """NULL was remembered as the owner "", so the same owner back counted as another owner and
    every run of the flow was deleted. NULL is not remembered: the last owner stands, also for
    a poller started meanwhile (a restart), which has only the store's copy."""
    sync, ctx, db = poller
    fid = db.add_flow("alice", access_control={})
    sync.sync_once()
    _runs(ctx, fid)
    db.update_flow(fid, user_id=None)
    sync.sync_once()
    assert ctx.directory.flow(fid).owner_id == ""  # type: ignore[union-attr]  # no owner meanwhile
    db.update_flow(fid, user_id="alice")
    sync.sync_once()
    assert _stored(ctx, fid) == 3
    assert ctx.directory.flow(fid).owner_id == "alice"  # type: ignore[union-attr]

    # NULL, then a restart, then another owner: still another flow (the store kept alice)
    db.update_flow(fid, user_id=None)
    sync.sync_once()
    restarted = OpenWebUISync(ctx)
    try:
        db.update_flow(fid, user_id="bob")
        restarted.sync_once()
    finally:
        restarted.db.close()
    assert _stored(ctx, fid) == 0


def test_a_change_that_keeps_updated_at_is_read(poller: tuple[OpenWebUISync, Context, WebUIDb]) -> None:
    """A flow made private with plain SQL (a migration, a hand edit), `updated_at` left as it
    was: the fingerprint was (id, updated_at), so it was never read again."""
    sync, ctx, db = poller
    fid = db.add_flow("alice", access_control=None, created_at=OLD)
    sync.sync_once()
    assert ctx.directory.flow(fid).access_control is None  # type: ignore[union-attr]
    db.execute("UPDATE flow SET access_control = '{}' WHERE id = ?", (fid,))
    sync.sync_once()
    assert ctx.directory.flow(fid).access_control == {}  # type: ignore[union-attr]
    db.execute("UPDATE flow SET user_id = 'bob' WHERE id = ?", (fid,))
    sync.sync_once()
    assert ctx.directory.flow(fid).owner_id == "bob"  # type: ignore[union-attr]


@pytest.fixture
def served(webui_db: WebUIDb, tmp_path: Path) -> Iterator[tuple[TestClient, Context, WebUIDb]]:
    """A server whose poller runs (every 0.2 s) on a real Open WebUI database."""
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice", "user", api_key=API_KEY)
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        openwebui_db=webui_db.url,
        openwebui_poll_s=0.2,
        openwebui_max_stale_s=60,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, client.app.state.ctx, webui_db  # type: ignore[attr-defined]


def _break(client: TestClient, db: WebUIDb) -> None:
    """Open WebUI's database cannot be read (mid-migration: its tables moved away) until a poll
    has failed."""
    db.execute('ALTER TABLE "user" RENAME TO user_moved')
    db.execute("ALTER TABLE flow RENAME TO flow_moved")
    sync = client.app.state.runtime.openwebui  # type: ignore[attr-defined]
    assert within(60, lambda: sync.failure is not None)


def _repair(db: WebUIDb) -> None:
    db.execute('ALTER TABLE user_moved RENAME TO "user"')
    db.execute("ALTER TABLE flow_moved RENAME TO flow")


def test_while_open_webui_cannot_be_read_what_the_mirror_lacks_is_503(
    served: tuple[TestClient, Context, WebUIDb],
) -> None:
    """A flow created in Open WebUI just before its database went away: its first run was
    refused 404 and lost. It is 503 (retry) now, and stored once the database is back."""
    client, ctx, db = served
    fid = db.add_flow("alice", access_control=None)
    _break(client, db)
    assert ctx.directory.flow(fid) is None  # created after the last poll that read it
    r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice"))
    assert r.status_code == 503, r.text
    assert "Open WebUI's database cannot be read" in r.json()["detail"] and "retry" in r.json()["detail"]
    # reading it too (it was "Flow not found"), and /ready says why
    r = client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("alice"))
    assert r.status_code == 503 and "retry" in r.json()["detail"], r.text
    assert within(60, lambda: "openwebui cannot be read" in client.get("/ready").json().get("detail", ""))
    _repair(db)
    assert within(60, lambda: ctx.directory.flow(fid) is not None)
    assert client.get("/ready").status_code == 200 and client.get("/ready").json()["openwebui"] == "read"
    r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice"))
    assert r.status_code == 200, r.text


def test_credentials_the_mirror_lacks_and_a_stale_mirror_are_503(
    served: tuple[TestClient, Context, WebUIDb],
) -> None:
    """A user or key made in Open WebUI during an outage cannot be told from one that does not
    exist: 503 once the mirror is behind (three polls), not 401. Past `openwebui_max_stale_s`
    every request is 503: a user deleted or demoted meanwhile must not keep access."""
    client, ctx, db = served
    _break(client, db)
    ctx.directory.synced_at = time.time() - 10  # the last good poll 10 s ago: behind, not stale
    assert client.get("/api/v1/users/me", headers=bearer("alice")).status_code == 200
    for headers in (bearer("newbie"), {"Authorization": "Bearer sk-" + "d4" * 16}):
        r = client.get("/api/v1/users/me", headers=headers)
        assert r.status_code == 503 and "Open WebUI's database cannot be read" in r.json()["detail"], r.text
    ctx.directory.synced_at = time.time() - 120  # past openwebui_max_stale_s
    for headers in (bearer("alice"), bearer("boss"), {"Authorization": f"Bearer {API_KEY}"}):
        r = client.get("/api/v1/users/me", headers=headers)
        assert r.status_code == 503 and "retry" in r.json()["detail"], r.text
    _repair(db)
    assert within(60, lambda: client.get("/api/v1/users/me", headers=bearer("alice")).status_code == 200)
    assert client.get("/api/v1/users/me", headers=bearer("newbie")).status_code == 401
