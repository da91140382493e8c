"""Open WebUI mode in a real `flowhistory serve` process, for what only a long-running server
shows: its poller holding one SQLite connection for days while Open WebUI's file is replaced,
and roles Open WebUI does not admit, over HTTP.

Waits are for "eventually" (a generous deadline): the 2 s bound is asserted in test_mode.py.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import bearer, make_execution
from tests.live_server import LiveServer
from tests.openwebui.webui_db import WebUIDb

EVENTUALLY_S = 30.0  # a safety net, never what is measured


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + EVENTUALLY_S
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path, str]]:
    """A server on a SQLite webui.db with bob (a user) and alice's public flow."""
    path = tmp_path / "webui.db"
    db = WebUIDb.sqlite(path).create_schema()
    db.add_user("alice", "user")
    db.add_user("bob", "user")
    fid = db.add_flow("alice", access_control=None)
    db.close()
    store = tmp_path / "server"
    store.mkdir()
    env = {"FLOWHISTORY_OPENWEBUI_DB": f"sqlite:///{path}", "FLOWHISTORY_SCHEDULER_ENABLED": "false"}
    with (
        LiveServer(store / "store.duckdb", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client, path, fid


def _write(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql)
    finally:
        conn.close()


def test_a_webui_db_replaced_at_its_path_is_read(served: tuple[httpx.Client, Path, str]) -> None:
    """A restore from backup (os.replace of a copy): its roles, and later changes to it, count."""
    client, path, _ = served

    def me(user: str) -> int:
        return client.get("/api/v1/users/me", headers=bearer(user)).status_code

    assert me("bob") == 200
    new = path.with_name("webui.db.restored")
    shutil.copy(path, new)
    _write(new, """UPDATE "user" SET role = 'pending' WHERE id = 'bob'""")
    os.replace(new, path)
    assert eventually(lambda: me("bob") == 401)
    _write(path, """DELETE FROM "user" WHERE id = 'alice'""")
    assert eventually(lambda: me("alice") == 401)


def test_a_role_open_webui_does_not_know_is_refused(served: tuple[httpx.Client, Path, str]) -> None:
    client, path, fid = served
    assert client.get(f"/api/v1/flows/{fid}", headers=bearer("bob")).status_code == 200
    _write(path, """UPDATE "user" SET role = NULL WHERE id = 'bob'""")
    assert eventually(lambda: client.get("/api/v1/users/me", headers=bearer("bob")).status_code == 401)
    r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("bob"))
    assert r.status_code == 401, r.text
    assert client.get("/api/v1/flows/accessible", headers=bearer("bob")).status_code == 401
