"""Open WebUI's database, read-only: a SQLite file (`mode=ro`) or PostgreSQL (read-only session).

flowhistory never writes there: SQLite is opened with the `mode=ro` URI, PostgreSQL with
`default_transaction_read_only=on`, so even a bug here cannot change Open WebUI's data.

A SQLite connection stays on the file it opened, also once another file takes its path (a
restore from backup, an atomic replace): every read first compares the path's (st_dev, st_ino)
with the opened file's (a stat, microseconds) and opens the new file when they differ.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any
from urllib.parse import quote

import orjson

from analytics.core.errors import InvalidInput
from analytics.core.json_text import loads_mended


class WebUIDatabase:
    """One read-only connection; `rows` answers plain tuples, JSON columns decoded by `json`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._conn: Any = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the SQLite file opened

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=True, options="-c default_transaction_read_only=on")
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
        try:
            cur = self._conn.execute(sql)
            rows = cur.fetchall()
        except Exception:
            if not keep_connection:
                self.close()
            raise
        if self.postgres:
            return list(rows)
        # SQLite keeps any value in any column: bytes (a BLOB) where text goes read as text, as a
        # TEXT value is. Read as `b'bob'`, a BLOB owner made another owner of the flow (its runs
        # deleted), and a BLOB that is not UTF-8 stopped every poll
        return [tuple(_text(v) if isinstance(v, bytes) else v for v in row) for row in rows]

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _text(raw: bytes) -> str:
    """SQLite keeps any bytes in a TEXT column; those that are not UTF-8 read with U+FFFD."""
    return raw.decode("utf-8", "replace")


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
