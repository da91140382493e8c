"""The poller against a hostile or flaky Open WebUI database: a bad row, a failed poll.

One row Open WebUI's own code could not read (text that is not JSON, a number where a list
belongs) must not stop every other change from reaching flowhistory, and a poll that fails
midway must not make the next one think it has seen the change already (a role taken away
would then never take effect). Over both dialects where the value can exist: PostgreSQL's
`json` type refuses text that is not JSON, so those rows are SQLite's.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.access.users import hash_key
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.openwebui.sync import OpenWebUISync
from api.app import create_app
from tests.factories import SECRET, bearer
from tests.openwebui.test_mode import API_KEY, BOUND_S, within
from tests.openwebui.webui_db import WebUIDb


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[WebUIDb]:
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("boss", "admin")
    db.add_user("alice", "user")
    db.add_user("bob", "user")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def poller(webui_db: WebUIDb, tmp_path: Path) -> Iterator[tuple[OpenWebUISync, Context, WebUIDb]]:
    """A poller driven by hand (no thread), so each poll's outcome is the test's to decide."""
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice", "user")
    with open_context(Settings(db_path=tmp_path / "store.duckdb", openwebui_db=webui_db.url)) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            yield sync, ctx, webui_db
        finally:
            sync.db.close()


def test_a_failed_poll_does_not_lose_a_role_change(poller: tuple[OpenWebUISync, Context, WebUIDb]) -> None:
    sync, ctx, db = poller
    fid = db.add_flow("alice")
    sync.sync_once()
    assert ctx.directory.user("alice").role == "user"  # type: ignore[union-attr]
    db.set_role("alice", "pending")
    db.execute("ALTER TABLE flow RENAME TO flow_moved")  # Open WebUI mid-migration: users read, flows not
    with pytest.raises(Exception):  # noqa: B017 (the driver's own error, which the thread logs)
        sync.sync_once()
    assert ctx.directory.user("alice").role == "user"  # the last mirror is kept meanwhile
    db.execute("ALTER TABLE flow_moved RENAME TO flow")
    sync.sync_once()
    assert ctx.directory.user("alice").role == "pending"
    assert ctx.directory.flow(fid) is not None


def test_a_failed_poll_does_not_lose_a_new_flow(poller: tuple[OpenWebUISync, Context, WebUIDb]) -> None:
    sync, ctx, db = poller
    sync.sync_once()
    fid = db.add_flow("alice", created_at=1_700_000_000)  # old stamps: not re-read as recent
    db.execute(
        "ALTER TABLE flow RENAME COLUMN nodes TO nodes_moved"
    )  # the flows' stamps read, then a failure
    with pytest.raises(Exception):  # noqa: B017
        sync.sync_once()
    db.execute("ALTER TABLE flow RENAME COLUMN nodes_moved TO nodes")
    sync.sync_once()
    assert ctx.directory.flow(fid) is not None


def test_a_bad_row_stops_nothing_else(
    sqlite_db: WebUIDb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = sqlite_db
    good = db.add_flow("alice", name="good")
    bad = db.add_flow("alice", name="bad")
    db.execute("UPDATE flow SET nodes = ?, access_control = ? WHERE id = ?", ("[{oops", '{"read": ', bad))
    numbered = db.add_flow("alice", name="numbered")
    db.execute(
        "UPDATE flow SET edges = '5', meta = '[1]', access_control = '\"public\"' WHERE id = ?", (numbered,)
    )
    db.add_group("g1", ["bob"])
    db.add_group("g2", [])
    db.execute("""UPDATE "group" SET user_ids = '{"bob": 1}' WHERE id = 'g2'""")
    shared = db.add_flow(
        "alice", name="shared", access_control={"read": {"group_ids": ["g1"], "user_ids": []}}
    )
    settings = Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, openwebui_db=db.url
    )
    caplog.set_level(logging.WARNING, logger="flowhistory")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:

        def status(path: str, user: str) -> int:
            return client.get(path, headers=bearer(user)).status_code

        # the bad flows are there, read as private with empty parts: their owner and admins only
        for fid in (bad, numbered):
            assert status(f"/api/v1/flows/{fid}/executions", "alice") == 200
            assert status(f"/api/v1/flows/{fid}/executions", "boss") == 200
            assert status(f"/api/v1/flows/{fid}/executions", "bob") == 403
        flow = client.get(f"/api/v1/flows/{numbered}", headers=bearer("alice")).json()
        assert (flow["nodes"], flow["edges"], flow["meta"], flow["access_control"]) == ([], [], {}, {})
        assert status(f"/api/v1/flows/{good}/executions", "bob") == 200  # null: public
        assert status(f"/api/v1/flows/{shared}/executions", "bob") == 200  # g1's grant resolves
        warned = [r.getMessage() for r in caplog.records if "Open WebUI's" in r.getMessage()]
        assert any(f"flow {bad}'s nodes is not JSON" in m for m in warned), warned
        assert any(f"flow {numbered}'s edges is a number, not a list" in m for m in warned), warned
        assert any("group g2's user_ids is an object, not a list" in m for m in warned), warned

        # every other change still arrives within the bound, and a new bad value is logged once
        db.set_role("bob", "pending")
        later = db.add_flow("boss", name="later")
        assert within(BOUND_S, lambda: status("/api/v1/flows/", "bob") == 401)
        assert within(BOUND_S, lambda: status(f"/api/v1/flows/{later}/executions", "boss") == 200)
        assert within(BOUND_S, lambda: status(f"/api/v1/flows/{good}/executions", "alice") == 200)
        assert sum(f"flow {bad}'s nodes" in r.getMessage() for r in caplog.records) == 1


def test_sqlite_blobs_where_text_goes_read_as_text(sqlite_db: WebUIDb, tmp_path: Path) -> None:
    """SQLite keeps a BLOB in any column: an owner id stored as one read as `b'alice'`, another
    owner, and the flow's runs were deleted; a BLOB that is not UTF-8 stopped every poll (and the
    server's start), so a user set pending kept access."""
    db = sqlite_db
    fid = db.add_flow("alice", name="kept")
    with open_context(Settings(db_path=tmp_path / "store.duckdb", openwebui_db=db.url)) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            sync.sync_once()
            db.execute(
                "UPDATE flow SET user_id = CAST('alice' AS BLOB), description = x'64ff' WHERE id = ?", (fid,)
            )
            db.execute("""UPDATE "user" SET role = CAST('pending' AS BLOB) WHERE id = 'bob'""")
            sync.sync_once()
            acl = ctx.directory.flow(fid)
            assert acl is not None and acl.owner_id == "alice"
            assert ctx.directory.user("bob").role == "pending"  # type: ignore[union-attr]
        finally:
            sync.db.close()


@pytest.mark.parametrize(
    "access_control",
    [
        {"read": {"user_ids": "bobby"}},  # a string: `in` would match a substring
        {"read": {"group_ids": "g1"}},
        {"read": {"user_ids": 7, "group_ids": None}},
        {"read": None},
        {"read": {"user_ids": [["bob"]], "group_ids": [{"id": "g1"}]}},
    ],
)
def test_malformed_grants_grant_nothing(sqlite_db: WebUIDb, tmp_path: Path, access_control: object) -> None:
    """Open WebUI stores any object its API is sent as access_control; only well-formed grants
    count here (Open WebUI's own check would match `"bob" in "bobby"`, or fail)."""
    db = sqlite_db
    db.add_group("g1", ["bob"])
    fid = db.add_flow("alice", access_control=access_control)  # type: ignore[arg-type]
    settings = Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, openwebui_db=db.url
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        path = f"/api/v1/flows/{fid}/executions/stats"
        assert client.get(path, headers=bearer("bob")).status_code == 403
        assert client.get(path, headers=bearer("alice")).status_code == 200
        listed = client.get("/api/v1/flows/accessible", headers=bearer("bob"))
        assert listed.status_code == 200 and fid not in [f["id"] for f in listed.json()]


def test_an_access_control_of_empty_text_is_private(sqlite_db: WebUIDb, tmp_path: Path) -> None:
    """'' was read as NULL, which for grants is public: any user read and wrote the flow's runs,
    where every other value that is not JSON made it private. Open WebUI cannot read it either."""
    db = sqlite_db
    fid = db.add_flow("alice")
    db.execute("UPDATE flow SET access_control = '' WHERE id = ?", (fid,))
    settings = Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, openwebui_db=db.url
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        run = {"flow_id": fid, "status": "success", "execution_time": 1}
        assert (
            client.post(f"/api/v1/flows/{fid}/executions", json=run, headers=bearer("bob")).status_code == 403
        )
        assert client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("bob")).status_code == 403
        assert client.get(f"/api/v1/flows/{fid}", headers=bearer("alice")).json()["access_control"] == {}


def test_a_flow_whose_owner_turns_null_answers_no_owner(sqlite_db: WebUIDb, tmp_path: Path) -> None:
    """The stored copy keeps the last owner (to tell a new flow under the same id), and the flow
    was answered with it: `user_id` named alice while she had none of an owner's rights."""
    db = sqlite_db
    fid = db.add_flow("alice")
    settings = Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, openwebui_db=db.url
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:

        def owner(user: str) -> object:
            return client.get(f"/api/v1/flows/{fid}", headers=bearer(user)).json()["user_id"]

        assert owner("alice") == "alice"
        db.execute("UPDATE flow SET user_id = NULL WHERE id = ?", (fid,))
        assert within(BOUND_S, lambda: owner("boss") == "")
        assert client.delete(f"/api/v1/flows/{fid}/executions", headers=bearer("alice")).status_code == 403
        db.execute("UPDATE flow SET user_id = 'alice' WHERE id = ?", (fid,))
        assert within(BOUND_S, lambda: owner("alice") == "alice")


def test_an_unreadable_config_keeps_the_last_value_and_is_read_again(
    poller: tuple[OpenWebUISync, Context, WebUIDb],
) -> None:
    """A migration moving `config` away for a moment must not turn Open WebUI's `auth.api_key
    .enable` into the setting's default (keys Open WebUI refuses accepted), nor stop it from
    being read once the table is back."""
    sync, ctx, db = poller
    assert ctx.settings.openwebui_api_keys  # the default: true
    db.execute('UPDATE "user" SET api_key = ? WHERE id = ?', (API_KEY, "alice"))
    db.save_config({"auth": {"api_key": {"enable": False}}})
    sync.sync_once()
    assert ctx.directory.user_for_key(hash_key(API_KEY)) is None
    db.execute("ALTER TABLE config RENAME TO config_moved")
    sync.sync_once()
    assert ctx.directory.user_for_key(hash_key(API_KEY)) is None  # the last value read stands
    db.execute("ALTER TABLE config_moved RENAME TO config")
    db.save_config({"auth": {"api_key": {"enable": True}}})
    sync.sync_once()
    assert ctx.directory.user_for_key(hash_key(API_KEY)) == "alice"
    db.save_config({"auth": {"api_key": {"enable": False}}})
    sync.sync_once()
    assert ctx.directory.user_for_key(hash_key(API_KEY)) is None


def test_a_sqlite_file_replaced_at_its_path_is_read(sqlite_db: WebUIDb, tmp_path: Path) -> None:
    """A restore from backup or an atomic write puts another file at webui.db's path: the
    poller reads that one from its next poll, not the old unlinked file for ever."""
    path = Path(sqlite_db.url.removeprefix("sqlite:///"))
    with open_context(Settings(db_path=tmp_path / "store.duckdb", openwebui_db=sqlite_db.url)) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            sync.sync_once()
            assert ctx.directory.user("bob").role == "user"  # type: ignore[union-attr]
            new = path.with_name("webui.db.new")
            shutil.copy(path, new)
            with sqlite3.connect(new) as c:
                c.execute("""UPDATE "user" SET role = 'pending' WHERE id = 'bob'""")
            c.close()
            os.replace(new, path)
            sync.sync_once()
            assert ctx.directory.user("bob").role == "pending"  # type: ignore[union-attr]
            with sqlite3.connect(path) as c:  # and that file's later changes too
                c.execute("""DELETE FROM "user" WHERE id = 'bob'""")
            c.close()
            sync.sync_once()
            assert ctx.directory.user("bob") is None
            path.unlink()  # no file at all: a failed poll, the last mirror kept
            with pytest.raises(Exception):  # noqa: B017 (sqlite3's own error, which the thread logs)
                sync.sync_once()
            assert ctx.directory.user("alice") is not None
        finally:
            sync.db.close()


def test_users_without_an_api_key_column_are_still_read(
    poller: tuple[OpenWebUISync, Context, WebUIDb],
) -> None:
    """Some Open WebUI versions keep keys out of `user`: roles and deletions must still reach the
    mirror (the failing query kept the last one, a pending user in, for as long as it lasted)."""
    sync, ctx, db = poller
    sync.sync_once()
    db.execute('ALTER TABLE "user" RENAME COLUMN api_key TO api_key_elsewhere')  # no api_key column
    db.set_role("alice", "pending")
    sync.sync_once()
    assert ctx.directory.user("alice").role == "pending"  # type: ignore[union-attr]


def test_a_flow_without_an_owner_is_owned_by_nobody(poller: tuple[OpenWebUISync, Context, WebUIDb]) -> None:
    """A NULL owner was read as the text "None": a user whose id is "None" owned the flow."""
    sync, ctx, db = poller
    db.add_user("None", "user")
    fid = db.add_flow("alice")
    db.execute("UPDATE flow SET user_id = NULL WHERE id = ?", (fid,))
    sync.sync_once()
    flow = ctx.directory.flow(fid)
    assert flow is not None and flow.owner_id == ""
