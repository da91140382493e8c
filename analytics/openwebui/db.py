"""Open WebUI's database, read-only: a SQLite file (`mode=ro`) or PostgreSQL (read-only session).

flowhistory never writes there: SQLite is opened with the `mode=ro` URI, PostgreSQL with
`default_transaction_read_only=on`, so even a bug here cannot change Open WebUI's data.

A PostgreSQL connection gives up on a server that does not answer: libpq's `connect_timeout`
and TCP keepalives (a host gone without a word), and a deadline on every read, past which the
socket is shut so the read fails at once (a peer that stalls mid-answer, which keepalives do not
see). Without them one stalled connection held the poller, and every request got a 503, until the
kernel dropped it (15 minutes, or never).

A SQLite connection stays on the file it opened, also once another file takes its path (a
restore from backup, an atomic replace): every read first compares the path's (st_dev, st_ino)
with the opened file's (a stat, microseconds) and opens the new file when they differ.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from analytics.core.errors import InvalidInput
from analytics.core.json_text import loads_mended

# libpq's keepalives: a host gone without a word (no RST) is given up ~25 s after it went quiet
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


def with_timeouts(url: str, timeout_s: float) -> str:
    """A PostgreSQL URL with libpq's `connect_timeout` (whole seconds, at least 2, as libpq reads
    it) and keepalives added, where the URL does not set them itself."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    added = {"connect_timeout": str(max(2, round(timeout_s))), **_KEEPALIVES}
    params = {**{k: v for k, v in added.items() if k not in params}, **params}
    # %20, never `+`, for a space: libpq does not read `+` as one (`options=-c%20x`)
    return urlunsplit(parts._replace(query=urlencode(params, quote_via=quote)))


class WebUIDatabase:
    """One read-only connection; `rows` answers plain tuples, JSON columns decoded by `json`.
    A PostgreSQL read that takes longer than `timeout_s` fails (the connection is dropped)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._conn: Any = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the SQLite file opened

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(
                with_timeouts(self.url, self.timeout_s),
                autocommit=True,
                options="-c default_transaction_read_only=on",
            )
        if not self.url.startswith("sqlite:///"):
            raise InvalidInput(
                "openwebui_db must be sqlite:////path/webui.db or postgresql://...", field="openwebui_db"
            )
        path = self._path()
        # stat before opening: a replace in between then shows as a change at the next read,
        # never as the old file's identity recorded for the new one's connection
        self._file = _identity(path)
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False)
        conn.text_factory = _text  # one value that is not UTF-8 must not fail every poll
        return conn

    def _path(self) -> str:
        return self.url.removeprefix("sqlite:///")

    def _replaced(self) -> bool:
        """The SQLite path names another file than the one opened (or none: deleted)."""
        return not self.postgres and _identity(self._path()) != self._file

    def rows(self, sql: str, *, keep_connection: bool = False) -> list[tuple[Any, ...]]:
        """Run one read; a broken connection is dropped and opened again on the next call.
        `keep_connection`: a failure of this read says nothing about the connection (a table
        that may be missing), so PostgreSQL is not reconnected every poll for it."""
        if self._conn is not None and self._replaced():
            self.close()
        if self._conn is None:
            self._conn = self._connect()
        conn, fired = self._conn, threading.Event()
        deadline = threading.Timer(self.timeout_s, _shut, [conn, fired]) if self.postgres else None
        if deadline is not None:
            deadline.daemon = True
            deadline.start()
        try:
            cur = conn.execute(sql)
            rows = cur.fetchall()
        except Exception as exc:
            # `keep_connection` spares a connection only a statement failed on (a table missing):
            # one the server broke (a restart, its session ended) was kept, and every later
            # poll failed on it at once, never reconnecting
            if not keep_connection or fired.is_set() or getattr(conn, "broken", False):
                self.close()
            if fired.is_set():
                raise TimeoutError(
                    f"Open WebUI's database did not answer a read within {self.timeout_s:g} s"
                ) from exc
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
        if fired.is_set():  # shut just as the answer came: the rows stand, the connection does not
            self.close()
        if self.postgres:
            return list(rows)
        # SQLite keeps any value in any column: bytes (a BLOB) where text goes read as text, as a
        # TEXT value is. Read as `b'bob'`, a BLOB owner made another owner of the flow (its runs
        # deleted), and a BLOB that is not UTF-8 stopped every poll
        return [tuple(_text(v) if isinstance(v, bytes) else v for v in row) for row in rows]

    def interrupt(self) -> None:
        """Shut a PostgreSQL read in progress on another thread (the server stopping: a stalled
        read held the poller, and the stop waited for it)."""
        conn = self._conn
        if self.postgres and conn is not None:
            _shut(conn, threading.Event())

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _text(raw: bytes) -> str:
    """SQLite keeps any bytes in a TEXT column; those that are not UTF-8 read with U+FFFD."""
    return raw.decode("utf-8", "replace")


def missing_column(exc: BaseException) -> bool:
    """The read failed because a column it names is not there (PostgreSQL's SQLSTATE 42703,
    SQLite's "no such column"), not because the database could not answer it now."""
    if getattr(exc, "sqlstate", None) == "42703":
        return True
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("no such column")


def _shut(conn: Any, fired: threading.Event) -> None:
    """Shut a PostgreSQL connection's socket from another thread: the read blocked on it sees
    the end of the stream and fails now. A duplicate of the descriptor is shut and closed, so the
    connection's own descriptor is never closed under it."""
    fired.set()
    try:
        fd = os.dup(conn.pgconn.socket)
    except Exception:  # already closed
        return
    with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def json(value: Any) -> Any:
    """A JSON column's value: text in SQLite, already decoded by psycopg in PostgreSQL."""
    if isinstance(value, str | bytes):
        return loads_mended(value)
    return value


_KINDS = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def json_as(value: Any, kind: type[list[Any]] | type[dict[str, Any]]) -> tuple[Any, str | None]:
    """A JSON column read as a `kind` (list or dict) or None (null, ''); anything else, text that
    is not JSON or JSON of another kind, as an empty `kind` and what was wrong with it.

    Open WebUI's own read of such a row would fail; here one bad row must not stop the others
    (the poller, the import), so it is read as the safe empty value and the caller says so."""
    if value in ("", b""):
        return None, None
    try:
        decoded = json(value)
    except orjson.JSONDecodeError:
        return kind(), "is not JSON"
    if decoded is None or isinstance(decoded, kind):
        return decoded, None
    return kind(), f"is {_KINDS.get(type(decoded), 'JSON')}, not {_KINDS[kind]}"
