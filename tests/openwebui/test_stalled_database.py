"""An Open WebUI database that stops answering, or answers one read with an error.

A connection that went silent mid-read (a host gone without a reset, a NAT that dropped the flow)
held the poller for as long as the kernel kept the socket: the mirror aged past its limit and
every request was a 503 long after the database could be read again. A read cancelled on the
server was taken for a `user` table without `api_key`, and every Open WebUI key was a 401.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from analytics.access.users import hash_key
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import UpstreamFailed
from analytics.openwebui.db import WebUIDatabase, with_timeouts
from analytics.openwebui.importer import Source
from analytics.openwebui.sync import OpenWebUISync
from tests.openwebui.pg_server import PostgresServer, create_database
from tests.openwebui.test_mode import API_KEY
from tests.openwebui.webui_db import WebUIDb

BOUND_S = 60  # a liveness bound (a hang fails the test), not a speed check


class Relay:
    """A TCP relay to PostgreSQL; `freeze()` makes the connections open then go silent (their
    bytes are taken and never passed on), as a dead peer behind a NAT does. New ones pass."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._frozen: list[threading.Event] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            frozen = threading.Event()
            with self._lock:
                self._frozen.append(frozen)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b, frozen), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, frozen: threading.Event) -> None:
        try:
            while data := a.recv(65536):
                if frozen.is_set():
                    threading.Event().wait()  # silent for ever (a daemon thread)
                b.sendall(data)
        except OSError:
            pass

    def freeze(self) -> None:
        with self._lock:
            for frozen in self._frozen:
                frozen.set()

    def close(self) -> None:
        self.listener.close()


def _in_time(fn: Any) -> Any:
    """fn() on a thread: its answer or its exception, or a failure if it hangs past BOUND_S."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), f"still blocked after {BOUND_S} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture
def relayed(
    postgres: PostgresServer, tmp_path: Path
) -> Iterator[tuple[OpenWebUISync, Context, WebUIDb, Relay]]:
    url = create_database(postgres, f"webui_stall_{tmp_path.name[-8:].lower()}")
    db = WebUIDb(url).create_schema()
    db.add_user("boss", "admin")
    db.add_user("alice", "user", api_key=API_KEY)
    relay = Relay(postgres.port)
    through = url.replace(f":{postgres.port}/", f":{relay.port}/")
    settings = Settings(db_path=tmp_path / "store.duckdb", openwebui_db=through, openwebui_timeout_s=5)
    with open_context(settings) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            yield sync, ctx, db, relay
        finally:
            sync.db.close()
            relay.close()
            db.close()


def test_a_stalled_read_fails_and_the_next_poll_reads_again(
    relayed: tuple[OpenWebUISync, Context, WebUIDb, Relay],
) -> None:
    sync, ctx, db, relay = relayed
    _in_time(sync.sync_once)
    assert ctx.directory.user("alice").role == "user"  # type: ignore[union-attr]
    relay.freeze()  # the poller's connection goes silent
    db.set_role("alice", "pending")
    with pytest.raises(TimeoutError, match="did not answer a read within 5 s"):
        _in_time(sync.sync_once)
    assert ctx.directory.user("alice").role == "user"  # the last mirror is kept meanwhile
    _in_time(sync.sync_once)  # a new connection: the change arrives
    assert ctx.directory.user("alice").role == "pending"  # type: ignore[union-attr]


def test_a_session_the_server_ended_is_opened_again(
    relayed: tuple[OpenWebUISync, Context, WebUIDb, Relay],
) -> None:
    """A users read that failed kept its connection (the column might be missing): after a
    PostgreSQL restart or a terminated session, every poll failed on the dead one for ever."""
    sync, ctx, db, _ = relayed
    sync.db = WebUIDatabase(db.url, 5)  # straight to PostgreSQL: the relay would hide the end as a stall
    _in_time(sync.sync_once)
    db.execute(f"SELECT pg_terminate_backend({sync.db._conn.info.backend_pid})")
    db.set_role("alice", "pending")
    with contextlib.suppress(Exception):  # the driver's own error, which the thread logs
        _in_time(sync.sync_once)  # meets the ended session
    _in_time(sync.sync_once)  # a new session
    assert ctx.directory.user("alice").role == "pending"  # type: ignore[union-attr]


def test_stopping_cuts_a_stalled_read(relayed: tuple[OpenWebUISync, Context, WebUIDb, Relay]) -> None:
    """The stop waited 10 s for a poller stalled on the database: SIGTERM took longer than the
    10 s the README promises. It now shuts the read's socket."""
    sync, _, _, relay = relayed
    sync.db.timeout_s = 600  # the read's own deadline is not what ends it here
    sync.start()
    relay.freeze()
    threading.Event().wait(3)  # the poller (every 1 s) is in a read on the frozen connection
    _in_time(sync.stop)
    assert sync._thread is not None and not sync._thread.is_alive()


def _break_the_key_column(db: WebUIDb) -> None:
    """`user` becomes a view whose `api_key` fails when read, as a cancelled statement does; the
    query without keys still reads (a fallback read it as "no api_key column")."""
    db.execute('ALTER TABLE "user" RENAME TO user_real')
    db.execute("ALTER TABLE user_real RENAME COLUMN api_key TO api_key_real")
    if db.url.startswith("postgresql"):
        db.execute(
            "CREATE FUNCTION cancelled() RETURNS text AS $$ BEGIN RAISE EXCEPTION"
            " 'canceling statement due to user request' USING ERRCODE = '57014'; END $$ LANGUAGE plpgsql STABLE"
        )
        db.execute('CREATE VIEW "user" AS SELECT *, cancelled() AS api_key FROM user_real')
    else:
        db.execute(
            "CREATE VIEW \"user\" AS SELECT *, json_extract('not json', '$') AS api_key FROM user_real"
        )


def test_a_users_read_that_fails_keeps_the_keys(webui_db: WebUIDb, tmp_path: Path) -> None:
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice", "user", api_key=API_KEY)
    with open_context(Settings(db_path=tmp_path / "store.duckdb", openwebui_db=webui_db.url)) as ctx:
        sync = OpenWebUISync(ctx)
        try:
            sync.sync_once()
            assert ctx.directory.user_for_key(hash_key(API_KEY)) == "alice"
            _break_the_key_column(webui_db)
            webui_db.execute("UPDATE user_real SET role = 'pending' WHERE id = 'alice'")
            with pytest.raises(Exception):  # noqa: B017 (the driver's own error, which the thread logs)
                sync.sync_once()
            # the poll failed as a whole: the last mirror stands, keys and roles alike
            assert ctx.directory.user_for_key(hash_key(API_KEY)) == "alice"
            assert ctx.directory.user("alice").role == "user"  # type: ignore[union-attr]
        finally:
            sync.db.close()


def test_urls_get_timeouts_but_keep_their_own() -> None:
    url = with_timeouts("postgresql://u:p@h:5432/db?sslmode=require&keepalives_idle=60", 30)
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["sslmode"] == "require" and params["keepalives_idle"] == "60"  # the URL's own
    assert params["connect_timeout"] == "30" and params["keepalives"] == "1"
    assert urlsplit(url).netloc == "u:p@h:5432" and urlsplit(url).path == "/db"
    assert dict(parse_qsl(urlsplit(with_timeouts("postgresql://h/db", 0.5)).query))["connect_timeout"] == "2"
    spaced = with_timeouts("postgresql://h/db?options=-c%20statement_timeout%3D5000", 30)
    assert "options=-c%20statement_timeout%3D5000" in spaced  # libpq reads no `+` as a space


def test_an_import_source_that_never_answers_is_given_up() -> None:
    """It accepts the connection and says nothing: the import's request hung for ever, and the
    server then could not stop."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        url = f"postgresql://u@127.0.0.1:{listener.getsockname()[1]}/x"
        with pytest.raises(UpstreamFailed, match="cannot open Open WebUI's database"):
            _in_time(lambda: Source(url, timeout_s=2))
    finally:
        listener.close()
        for s in accepted:
            s.close()


def test_an_import_read_that_stalls_fails_in_words(
    relayed: tuple[OpenWebUISync, Context, WebUIDb, Relay],
) -> None:
    """The import's reads had no deadline: a hung backend kept `import openwebui` silent for
    minutes, and a server importing could not stop."""
    _, _, db, relay = relayed
    through = db.url.replace(f":{relay.target}/", f":{relay.port}/")
    source = Source(through, timeout_s=3)
    try:
        assert source.table('SELECT id FROM "user"').num_rows == 2
        relay.freeze()
        with pytest.raises(UpstreamFailed, match="did not answer within 3 s"):
            _in_time(lambda: source.table('SELECT id FROM "user"'))
        with pytest.raises(UpstreamFailed):  # the stalled connection is not used again
            source.table("SELECT 1")
    finally:
        source.close()
