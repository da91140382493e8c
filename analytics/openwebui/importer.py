"""Move Open WebUI's history in: its users, groups, flows and every `flow_execution` row.

Imports: core, access, flows, history.

The columnar path, no Python object per run: runs are read in chunks ordered by (created_at, id)
as Arrow batches through ADBC (SQLite or PostgreSQL; an `outputs` that copies `node_results` is
read once), on a thread of their own. Each chunk is prepared on a private DuckDB: JSON checked,
node facts computed in bulk by node_facts_columnar (ingest's rules, so an imported run's facts
equal a posted run's), meta merged; the payloads are handed to the writer typed as JSON so the
insert does not parse them again. The writer joins the flows and inserts, one transaction a
chunk. Reading, preparing and writing overlap (the next chunk is read and prepared while the
writer inserts the previous one). orjson parses only the texts it might refuse where DuckDB
accepts them (NaN, Infinity, trailing commas, deep nesting: `_orjson_verdicts`), in all five
columns, so a run the detail could not answer is skipped. Users, groups and flows go in with one statement a
table.

Idempotent and resumable: the ids a chunk read are recorded in the same transaction as its rows
(`openwebui_import_ids`), and a run reads only the source's rows whose ids are not there (an
anti-join in the store, `_plan`): a rerun, or one after a kill, reads what no import read, also
runs Open WebUI saved meanwhile with a created_at at or before the last one imported, and the
insert skips ids already stored (ON CONFLICT DO NOTHING). A row read once is never read again
(a run deleted here since does not come back). `openwebui_import_progress` keeps the counts. Rows that break flowhistory's rules follow
one rule each, and every such id is kept in `openwebui_import_issues` (and written to the
report file):
- orphan run (its flow is in neither Open WebUI's `flow` table nor flowhistory, judged once
  Open WebUI's flows are copied in: a flow an earlier import brought keeps its later runs):
  skipped, as Open WebUI should have deleted it with its flow;
- status outside success/error/aborted (NULL too): stored as `error`, the original in
  `meta.openwebui_import.status` (null for NULL; bytes that are not UTF-8 as hex, in `status_hex`);
- execution_time negative, missing, text or past 2^53: stored as 0; with a fraction: rounded; the
  original in `meta.openwebui_import.execution_time` either way;
- id that is not UTF-8 (or NULL, or ''): skipped unread, reported as x'<hex>' (`_plan`); an id
  SQLite keeps as a BLOB of UTF-8 text: imported under its text (fetched as a BLOB: `Source.runs`);
- created_at with a fraction of a second: rounded down to the second, reported as altered;
- a payload or meta that is '' (empty text, not JSON): stored as no value, reported as altered;
- a payload integer past u64/i64 (the detail answers the nearest float): reported as altered;
- meta holding `openwebui_import` already, when the import adds its note: the source's value is
  kept under `meta.openwebui_import.source_value`, reported as altered;
- a user's, group's or flow's text that is not UTF-8: read with U+FFFD, reported as altered;
- a user's or flow's time outside epoch seconds from 1970 to 9999-12-31 (milliseconds, say):
  clamped to it, as Open WebUI mode's mirror reads it (`_time`), reported as altered;
- a flow's name (its id when it has none) past NAME_MAX characters: cut to NAME_MAX (`_name`),
  reported as altered, so the flow as read can be saved back;
- id not a UUID, no user (or a user_id or flow_id that is not UTF-8), no created_at (NULL or
  text) or one before year 1 or more than a day ahead, a payload or meta that is not JSON as
  orjson reads and writes it (a posted run's rule: no NaN, Infinity, trailing comma, at most 254
  levels), or is JSON but not an object or null: skipped;
- an id that is a UUID written another way (capitals, braces, no dashes): stored in the usual
  spelling, reported as altered;
- two rows with one UUID written two ways: the first (earliest created_at, at a tie the usual
  spelling) is imported, the other skipped as "the same id as" it (`_duplicates`);
- rows with the very same id (a flow_execution without its primary key): the first (earliest
  created_at, at a tie SQLite's rowid) is imported, each other skipped with a line of its own
  (`_copies`);
- a flow's or group's JSON column that is not JSON of its kind: imported empty (a flow's bad
  access_control as `{}`, private), reported as altered; one that is '' likewise (as NULL is,
  but access_control: private), reported, where NULL is not (`_EMPTIED`).
The ids a chunk fetches are bound as parameters (a JSON list), never written into its SQL.
A run's `flow_version` is the flow's current version when the run is newer than the flow's last
change (that definition ran), else "unknown".
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import adbc_driver_manager
import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from analytics.core.context import Context
from analytics.core.errors import InvalidInput, UpstreamFailed
from analytics.core.flow_version import flow_version
from analytics.core.json_scan import opening_brackets
from analytics.core.json_text import mend_column
from analytics.core.store import Connection, one_row
from analytics.flows.registry import NAME_MAX
from analytics.history.counters import Counters, Recount
from analytics.history.node_facts_columnar import facts_into
from analytics.history.preparing import PREPARE_WORKERS, Preparers
from analytics.openwebui.db import json_as, with_timeouts

log = logging.getLogger("flowhistory")

UNKNOWN_VERSION = "unknown"
CHUNK_ROWS = 20_000  # A/B on 200k runs: faster than 50k (the pipeline fills and drains sooner)
# and at most about this many bytes a chunk: five chunks are in memory at once (read ahead, two
# prepared, one written), and at 20,000 of Open WebUI's usual 30-60 KB runs one took 6 GB
CHUNK_BYTES = 128 * 2**20
# the private DuckDB that prepares chunks: one thread (measured: two, beside the reader and the
# writer on a 2-core machine, were slower)
PREPARE_THREADS = 1
_PAYLOADS = ("inputs", "outputs", "node_results", "errors", "meta")
_MAX_MS = 2**53

_STATE_DDL = [
    """CREATE TABLE IF NOT EXISTS openwebui_import_progress (
        source VARCHAR PRIMARY KEY, last_created_at BIGINT, last_id VARCHAR,
        runs_read BIGINT NOT NULL, runs_stored BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS openwebui_import_issues (
        source VARCHAR NOT NULL, id VARCHAR NOT NULL, action VARCHAR NOT NULL, reason VARCHAR NOT NULL,
        PRIMARY KEY (source, id, reason))""",
    # every source row an import has read (its id as read; one that is not UTF-8 as x'<hex>'),
    # committed with its chunk: a rerun reads what is not here (no key: appends stay cheap)
    """CREATE TABLE IF NOT EXISTS openwebui_import_ids (source VARCHAR NOT NULL, id VARCHAR NOT NULL)""",
]


class InjectedFailure(RuntimeError):
    """The test seam's crash: raised after N committed chunks, as a kill would stop the import."""


@dataclass
class ImportSummary:
    """What one import did; `runs_*` count this invocation, `total_*` the source so far."""

    source: str
    users: int = 0
    groups: int = 0
    flows: int = 0
    runs_read: int = 0
    runs_stored: int = 0
    runs_already_there: int = 0
    runs_skipped: int = 0
    runs_altered: int = 0
    total_read: int = 0
    total_stored: int = 0
    total_in_source: int = 0
    finished: bool = False
    seconds: float = 0.0
    report: Path | None = None
    issues: list[dict[str, str]] = field(default_factory=list)


# -- the source ------------------------------------------------------------------------------


def redacted(url: str) -> str:
    """The URL without its password (`user:pw@`, or libpq's `?password=` / `sslpassword=`): the
    key the progress is kept under, and what is printed."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(
        f"{name}=***" if _SECRET_PARAM.search(name) else piece
        for piece in parts.query.split("&")
        for name in [piece.partition("=")[0]]
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_SECRET_PARAM = re.compile(r"pass|secret|token|key", re.IGNORECASE)  # libpq: password, sslpassword


def source_key(url: str) -> str:
    """The source itself, whatever its URL says, the key its report and counts are kept under:
    a SQLite file by its real path (`//`, `..`, a symlink), a PostgreSQL database by user, host,
    port, name and `options` (a schema: no password, no other parameter). Keyed by the URL's text, the same file
    named another way got an empty report and "0 of M stored so far"."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + os.path.realpath(url.removeprefix("sqlite:///"))
    if not url.startswith(("postgresql://", "postgres://")):
        return redacted(url)
    try:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))  # libpq's own names win
        user = params.get("user") or unquote(parts.username or "")
        host = params.get("host") or params.get("hostaddr") or unquote(parts.hostname or "")
        port = params.get("port") or str(parts.port or 5432)
        dbname = params.get("dbname") or unquote(parts.path.lstrip("/")) or user
    except ValueError:  # a port that is no number, several hosts: the URL as written
        return redacted(url)
    key = f"postgresql://{quote(user, safe='')}@{host}:{port}/{quote(dbname, safe='')}"
    # `options` can name another schema (`-csearch_path=other`): another Open WebUI's tables
    return key + (f"?options={quote(params['options'], safe='')}" if params.get("options") else "")


def _names_of(c: Connection, key: str) -> list[str]:
    """The keys the store holds this source's report and counts under: `key`, and any other
    that names the same source (one an earlier version kept: the URL as written)."""
    stored = c.execute(
        "SELECT source FROM openwebui_import_progress UNION SELECT source FROM openwebui_import_issues"
    ).fetchall()
    return sorted({key} | {r[0] for r in stored if r[0] != key and source_key(r[0]) == key})


_SOURCE_TABLES = ('"user"', '"group"', "flow", "flow_execution")  # what the import reads
# the integer columns of Source.runs (the others are text), for a chunk that found no row
_RUN_INTS = {
    name: pa.int64()
    for name in ("outputs_copy", "status_null", "empty_mask", "execution_time", "created_at", "row_key")
}


def _first_line(exc: BaseException) -> str:
    """A driver's message without its detail lines (libpq adds hints on lines of their own)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# the SQLite files imports in this process have open, by (st_dev, st_ino), each with how many
_OPEN_HERE: Counter[tuple[int, int]] = Counter()
_OPEN_LOCK = threading.Lock()


def _opened(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone since it was opened: nothing to tell
        return None
    with _OPEN_LOCK:
        _OPEN_HERE[(st.st_dev, st.st_ino)] += 1
    return st.st_dev, st.st_ino


def open_here(path: str) -> bool:
    """Whether an import in this process has the SQLite file at `path` open now. Its SQLite holds
    a POSIX lock on the file while the import runs, so the server's check of a source must not
    open such a file to read its header (closing any descriptor of a file drops every lock the
    process holds on it), yet it is a SQLite source, not the store: a second import of the same
    file, while one ran, was refused as "no readable SQLite file there"."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return False
    with _OPEN_LOCK:
        return _OPEN_HERE[(st.st_dev, st.st_ino)] > 0


class Source:
    """Open WebUI's database through ADBC: Arrow straight out of SQLite or PostgreSQL."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._stalled = False
        self._file: tuple[int, int] | None = None  # the SQLite file's (st_dev, st_ino): open_here
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        try:
            if self.postgres:
                import adbc_driver_postgresql.dbapi as driver

                # a server that never answers is given up (connect_timeout, keepalives)
                self._conn: Any = driver.connect(with_timeouts(url, timeout_s))
            elif url.startswith("sqlite:///"):
                import adbc_driver_sqlite.dbapi as sqlite_driver

                path = url.removeprefix("sqlite:///")
                if not Path(path).is_file():
                    raise InvalidInput(f"there is no SQLite database at {path}", field="from")
                self._conn = sqlite_driver.connect(f"file:{quote(path)}?mode=ro")
                self._file = _opened(path)
            else:
                raise InvalidInput(
                    "the source must be sqlite:////path/webui.db or postgresql://user:pass@host/db",
                    field="from",
                )
        except adbc_driver_manager.Error as exc:
            raise UpstreamFailed(
                f"cannot open Open WebUI's database {redacted(url)}: {_first_line(exc)}"
            ) from exc
        for table in _SOURCE_TABLES:  # a database that is not Open WebUI's is told so, not a 500
            try:
                self.table(f"SELECT * FROM {table} LIMIT 0")
            except UpstreamFailed as exc:
                self.close()
                # the driver's words go to the log, not into the answer (the server's import
                # step answers an admin's request with this; the CLI shows the log line too)
                log.warning(
                    "%s: reading %s failed: %s", redacted(url), table, _first_line(exc.__cause__ or exc)
                )
                raise InvalidInput(
                    f"{redacted(url)} is not an Open WebUI database: it has no {table} table that can be read"
                    " (the log says why)",
                    field="from",
                ) from exc

    def table(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """UpstreamFailed when the driver fails: a source damaged, replaced or gone mid-import
        (a PostgreSQL restart) is the source's failure (502), not an internal error. A
        PostgreSQL read that takes longer than `timeout_s` fails too: it runs on a thread of its
        own, left to the stalled driver (a hung backend kept the import silent for minutes, and
        the server's stop waited for it); the connection is not used again."""
        if not self.postgres:
            return self._read(sql, params)
        if self._stalled:
            raise UpstreamFailed(self._stall_detail())
        answer: dict[str, Any] = {}

        def read() -> None:
            try:
                answer["table"] = self._read(sql, params)
            except BaseException as exc:  # handed to the caller's thread
                answer["error"] = exc

        reader = threading.Thread(target=read, name="openwebui-import-read", daemon=True)
        reader.start()
        reader.join(self.timeout_s)
        if reader.is_alive():
            self._stalled = True
            raise UpstreamFailed(self._stall_detail())
        if "error" in answer:
            raise answer["error"]
        table: pa.Table = answer["table"]
        return table

    def _stall_detail(self) -> str:
        return (
            f"reading Open WebUI's database {redacted(self.url)} failed: it did not answer within"
            f" {self.timeout_s:g} s (FLOWHISTORY_OPENWEBUI_TIMEOUT_S); run the import again once it does"
        )

    def _read(self, sql: str, params: list[Any] | None) -> pa.Table:
        cur = self._conn.cursor()
        try:
            cur.execute(sql, params)
            table: pa.Table = cur.fetch_arrow_table()
            return table
        except adbc_driver_manager.Error as exc:
            raise UpstreamFailed(
                f"reading Open WebUI's database {redacted(self.url)} failed: {_first_line(exc)}"
            ) from exc
        finally:
            cur.close()

    def text(self, column: str) -> str:
        """A column as text, never NULL ('' for NULL): SQLite's driver infers each column's type
        from the first rows, so a column NULL there and text later would fail mid-chunk."""
        return f"coalesce(CAST({column} AS TEXT), '') AS {column}"

    def keys(self) -> pa.Table:
        """Every run's (created_at, id), in that order: small, sorted once. Open WebUI has no
        index on created_at alone, so paging the full rows by it would sort the whole table for
        every chunk; the chunks fetch their rows by id instead. The id column comes as binary:
        SQLite keeps any bytes in a TEXT column, and one id that is not UTF-8 aborted the import.
        `blob` (1) marks an id SQLite keeps as a BLOB: only a BLOB matches it when fetched."""
        at_col = "coalesce(CAST(created_at AS BIGINT), -1)"
        blob = "0" if self.postgres else "CASE WHEN typeof(id) = 'blob' THEN 1 ELSE 0 END"
        keys = self.table(
            f"SELECT {self.text('id')}, {at_col} AS created_at, {blob} AS blob FROM flow_execution"
            f" ORDER BY {at_col}, id"
        )
        if keys.num_rows == 0:  # no row to infer text from: SQLite's driver types the id int64
            return pa.table(
                {
                    "id": pa.array([], pa.binary()),
                    "created_at": pa.array([], pa.int64()),
                    "blob": pa.array([], pa.int64()),
                }
            )
        return keys.set_column(0, "id", keys.column(0).cast(pa.binary()))

    def runs(self, ids: list[str], blobs: list[str] | None = None) -> pa.Table:
        """The rows of the chunk whose ids are `ids` (as text) or `blobs` (SQLite: kept as a
        BLOB, its text here). The ids are bound, one JSON list a parameter, never written into
        the SQL: an id holding a quote or a NUL made the chunk's statement fail, for good.
        `outputs` that is a copy of `node_results` (the editor's runs) comes as '' with
        `outputs_copy` 1: the text is read once, not twice. `row_key` tells rows with the same
        id apart (a flow_execution without its primary key): SQLite's rowid, 0 in PostgreSQL."""
        copy = "CAST(outputs AS TEXT) = CAST(node_results AS TEXT)"
        cols = ", ".join(
            [self.text("id"), self.text("flow_id"), self.text("user_id"), self.text("status")]
            + [self.text(c) for c in _PAYLOADS if c != "outputs"]
            + [
                f"CASE WHEN {copy} THEN '' ELSE coalesce(CAST(outputs AS TEXT), '') END AS outputs",
                f"CASE WHEN {copy} THEN 1 ELSE 0 END AS outputs_copy",
                "CASE WHEN status IS NULL THEN 1 ELSE 0 END AS status_null",
                # which payloads are '' (empty text, not JSON; NULL reads as '' too): a bit each
                " + ".join(
                    f"CASE WHEN CAST({c} AS TEXT) = '' THEN {1 << i} ELSE 0 END"
                    for i, c in enumerate(_PAYLOADS)
                )
                + " AS empty_mask",
                *self._times(),
            ]
        )
        params = [orjson.dumps(ids).decode()]
        if self.postgres:  # PostgreSQL's text holds no NUL nor bytes: no BLOB to match
            where = "id IN (SELECT json_array_elements_text(CAST($1 AS json)))"
        else:
            where = "id IN (SELECT value FROM json_each(?))"
            if blobs:  # rare: a BLOB equals only a BLOB
                where += " OR id IN (SELECT CAST(value AS BLOB) FROM json_each(?))"
                params.append(orjson.dumps(blobs).decode())
        row_key = "0" if self.postgres else "rowid"
        table = self.table(f"SELECT {cols}, {row_key} AS row_key FROM flow_execution WHERE {where}", params)
        if table.num_rows == 0:  # no row to infer types from: SQLite's driver types each int64
            return pa.table({n: pa.array([], _RUN_INTS.get(n, pa.string())) for n in table.column_names})
        return table

    def _times(self) -> list[str]:
        """execution_time and created_at as integers, and execution_time's original as JSON text
        ('' when it is an integer). SQLite keeps any value in any column, and its CAST read
        'abc' and 'yesterday' as 0 and 12.7 as 12: they were stored silently. Here a fraction is
        rounded (the original kept), and text is no number (a created_at that is text: none). A
        created_at with a fraction of a second is rounded down to the second (as epoch seconds are
        everywhere here), its original in `created_at_raw` for the report ('' when whole)."""
        if self.postgres:  # BIGINT columns: an integer or NULL
            return [
                "CAST(execution_time AS BIGINT) AS execution_time",
                "CASE WHEN execution_time IS NULL THEN 'null' ELSE '' END AS execution_time_raw",
                "CAST(created_at AS BIGINT) AS created_at",
                "'' AS created_at_raw",
            ]
        et = "execution_time"
        finite = (
            f"CASE WHEN abs({et}) < 1e308 THEN CAST({et} AS TEXT) ELSE json_quote(CAST({et} AS TEXT)) END"
        )
        return [
            f"CAST(CASE typeof({et}) WHEN 'integer' THEN {et} WHEN 'real' THEN round({et}) END AS BIGINT)"
            " AS execution_time",
            f"coalesce(CASE typeof({et}) WHEN 'integer' THEN '' WHEN 'real' THEN {finite}"
            f" WHEN 'text' THEN json_quote({et}) WHEN 'blob' THEN json_quote('x''' || hex({et}) || '''') END,"
            " 'null') AS execution_time_raw",
            "CAST(CASE typeof(created_at) WHEN 'integer' THEN created_at WHEN 'real' THEN"
            " CAST(created_at AS INTEGER) - (created_at < CAST(created_at AS INTEGER)) END AS BIGINT) AS created_at",
            "CASE WHEN typeof(created_at) = 'real' AND created_at <> CAST(created_at AS INTEGER)"
            " AND abs(created_at) < 1e18 THEN CAST(created_at AS TEXT) ELSE '' END AS created_at_raw",
        ]

    def close(self) -> None:
        if not self._stalled:  # a stalled read's thread still holds the connection
            self._conn.close()
        if self._file is not None:
            with _OPEN_LOCK:
                _OPEN_HERE[self._file] -= 1
            self._file = None


# -- identity and flows ----------------------------------------------------------------------


# a user's or flow's time as Open WebUI mode's mirror reads it (sync._seconds): epoch seconds
# from 1970 to 9999-12-31 23:59:59. Past them (epoch milliseconds: year 58882) datetime raised
# and stopped the import; a user or flow is not skipped for its time (its runs would be orphans)
_TIME_MAX = 253402300799


def _seconds(value: Any) -> int:
    """Epoch seconds within the mirror's bounds; NULL as 0 (1970), as the mirror reads it."""
    return max(0, min(int(value or 0), _TIME_MAX))


def _epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(_seconds(value), UTC).replace(tzinfo=None)


def _time(row: dict[str, Any], name: str, what: str, altered: list[tuple[str, str]]) -> datetime:
    """The row's time column `name`, clamped as the mirror reads it; a value that changed is
    reported as altered (NULL, read as 1970 by both, is not)."""
    value = row[name]
    seconds = _seconds(value)
    if value is not None and int(value) != seconds:
        altered.append(
            (
                row["id"],
                f"{what} {name} {int(value)} is not a time in epoch seconds from 1970 to 9999-12-31:"
                f" imported as {seconds}, as Open WebUI mode reads it",
            )
        )
    return _epoch(seconds)


def _name(flow: dict[str, Any], altered: list[tuple[str, str]]) -> str:
    """The flow's name (its id when it has none) within NAME_MAX characters, as the API counts
    them: stored longer, the flow as read could not be saved back (POST /{id}: 422) nor its
    export imported. Cut to the first NAME_MAX, reported as altered."""
    name: str = flow["name"] or flow["id"]
    if len(name) > NAME_MAX:
        said = "name" if flow["name"] else "name (empty: its id)"
        altered.append(
            (
                flow["id"],
                f"flow {said} is {len(name)} characters, more than {NAME_MAX}: imported cut to its first {NAME_MAX}",
            )
        )
        name = name[:NAME_MAX]
    return name


def _json_or_none(text: str | None) -> Any:
    return None if text is None or text in ("", "null") else orjson.loads(text)


def _readable(table: pa.Table, what: str, altered: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The rows as dicts, text that is not UTF-8 (SQLite keeps any bytes in a TEXT column)
    read with U+FFFD for its bad bytes and reported as altered: one such name stopped the import.
    Each column is validated in one pass; only one that fails is looked at value by value."""
    bad: dict[str, list[int]] = {}
    for index, name in enumerate(table.column_names):
        column = table.column(index)
        if not pa.types.is_string(column.type):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            raw = column.cast(pa.binary()).to_pylist()
            texts: list[str | None] = []
            for i, value in enumerate(raw):
                if value is None:
                    texts.append(None)
                    continue
                try:
                    texts.append(value.decode())
                except UnicodeDecodeError:
                    texts.append(value.decode("utf-8", "replace"))
                    bad.setdefault(name, []).append(i)
            table = table.set_column(index, name, pa.array(texts, pa.string()))
    rows: list[dict[str, Any]] = table.to_pylist()
    for name, indexes in bad.items():
        for i in indexes:
            altered.append(
                (
                    rows[i]["id"],
                    f"{what} {name} is not UTF-8 text: imported with U+FFFD for the bytes that are not",
                )
            )
    return rows


_FLOW_JSON = ("nodes", "edges", "meta", "access_control")  # a flow's JSON columns, bits 1, 2, 4, 8
# what a JSON column that is '' is imported as: what NULL is (as a run's payload is), but a flow's
# access_control: '' is not JSON, and a bad access_control makes the flow private, never public
_EMPTIED = {
    "nodes": "imported as [], as NULL is",
    "edges": "imported as [], as NULL is",
    "meta": "imported as {}, as NULL is",
    "access_control": "imported as {} (private), as access_control that is not JSON is",
    "user_ids": "imported as no members, as NULL is",
}


def _empty_mask(columns: list[str] | tuple[str, ...]) -> str:
    """Which of `columns` hold '' (empty text, not JSON), a bit each in column order, as
    `empty_mask`: Source.text reads NULL as '' too, and only '' is reported (as a run's is)."""
    bits = " + ".join(
        f"CASE WHEN CAST({c} AS TEXT) = '' THEN {1 << i} ELSE 0 END" for i, c in enumerate(columns)
    )
    return f"{bits} AS empty_mask"


def _import_identity(ctx: Context, src: Source, summary: ImportSummary, source: str) -> None:
    altered: list[tuple[str, str]] = []  # (id, reason): rows read with a bad value made readable or empty
    users = _readable(
        src.table(
            f"SELECT {src.text('id')}, {src.text('name')}, {src.text('email')}, {src.text('role')},"
            ' CAST(created_at AS BIGINT) AS created_at FROM "user"'
        ),
        "user",
        altered,
    )
    groups = _readable(
        src.table(
            f"SELECT {src.text('id')}, {src.text('name')}, {src.text('description')}, {src.text('user_ids')},"
            f' {_empty_mask(["user_ids"])} FROM "group"'
        ),
        "group",
        altered,
    )
    flows = _readable(
        src.table(
            f"SELECT {src.text('id')}, {src.text('user_id')}, {src.text('name')}, {src.text('description')},"
            f" {src.text('nodes')}, {src.text('edges')}, {src.text('meta')}, {src.text('access_control')},"
            " CAST(created_at AS BIGINT) AS created_at, CAST(updated_at AS BIGINT) AS updated_at,"
            f" {_empty_mask(_FLOW_JSON)} FROM flow"
        ),
        "flow",
        altered,
    )

    user_rows = pa.table(
        {
            "id": [u["id"] for u in users],
            "name": [u["name"] or None for u in users],
            "email": [u["email"] or None for u in users],
            "role": [u["role"] if u["role"] in ("admin", "user", "pending") else "pending" for u in users],
            "created_at": pa.array(
                [_time(u, "created_at", "user", altered) for u in users], pa.timestamp("us")
            ),
        }
    )
    group_rows = pa.table(
        {
            "id": [g["id"] for g in groups],
            "name": [g["name"] or g["id"] for g in groups],
            "description": [g["description"] or None for g in groups],
        }
    )

    def column(
        row: dict[str, Any], name: str, kind: type[list[Any]] | type[dict[str, Any]], what: str, bit: int = 1
    ) -> Any:
        empty = "[]" if kind is list else "{}"
        if row["empty_mask"] & bit:  # '' (Source.text reads NULL as '' too: the mask tells them apart)
            altered.append((row["id"], f"{what} {name} held empty text, which is not JSON: {_EMPTIED[name]}"))
            return kind() if name == "access_control" else None
        value, wrong = json_as(row[name], kind)
        if wrong is not None:
            altered.append((row["id"], f"{what} {name} {wrong}: imported as {empty}"))
        return value

    members = [
        (g["id"], uid)
        for g in groups
        for uid in (column(g, "user_ids", list, "group") or [])
        if isinstance(uid, str)
    ]
    member_rows = pa.table(
        {"group_id": [m[0] for m in members], "user_id": [m[1] for m in members]},
        schema=pa.schema([("group_id", pa.string()), ("user_id", pa.string())]),
    )
    flow_cols: dict[str, list[Any]] = {
        k: []
        for k in ("id", "user_id", "name", "description", "nodes", "edges", "meta", "access_control",
                  "created_at", "updated_at", "version")
    }  # fmt: skip
    for f in flows:
        nodes = column(f, "nodes", list, "flow", 1) or []
        edges = column(f, "edges", list, "flow", 2) or []
        meta = column(f, "meta", dict, "flow", 4)
        access = column(f, "access_control", dict, "flow", 8)  # `{}`, private, when bad
        created = _time(f, "created_at", "flow", altered)
        name = _name(f, altered)
        # no updated_at (NULL or 0): the flow's creation, as before
        updated = _time(f, "updated_at", "flow", altered) if f["updated_at"] else created
        for key, value in (
            ("id", f["id"]),
            ("user_id", f["user_id"]),
            ("name", name),
            ("description", f["description"] or None),
            ("nodes", orjson.dumps(nodes).decode()),
            ("edges", orjson.dumps(edges).decode()),
            ("meta", orjson.dumps(meta if meta is not None else {}).decode()),
            ("access_control", None if access is None else orjson.dumps(access).decode()),
            ("created_at", created),
            ("updated_at", updated),
            ("version", flow_version(nodes, edges)),
        ):
            flow_cols[key].append(value)
    flow_rows = pa.table(
        {
            k: pa.array(v, pa.timestamp("us") if k in ("created_at", "updated_at") else pa.string())
            for k, v in flow_cols.items()
        }
    )

    def write(c: Connection) -> tuple[int, int, int]:
        """One statement a table (a row at a time, a thousand flows took seconds)."""
        c.register("owui_users", user_rows)
        c.register("owui_groups", group_rows)
        c.register("owui_members", member_rows)
        c.register("owui_flows", flow_rows)
        try:
            n_users = _changed(
                c.execute(
                    "INSERT INTO users (id, name, email, role, created_at)"
                    " SELECT id, name, email, role, created_at FROM owui_users ON CONFLICT DO NOTHING"
                )
            )
            n_groups = _changed(
                c.execute(
                    "INSERT INTO groups (id, name, description) SELECT id, name, description FROM owui_groups"
                    " ON CONFLICT DO NOTHING"
                )
            )
            c.execute(
                "INSERT INTO group_members SELECT DISTINCT group_id, user_id FROM owui_members ON CONFLICT DO NOTHING"
            )
            if altered:
                c.executemany(
                    "INSERT INTO openwebui_import_issues VALUES (?, ?, 'altered', ?) ON CONFLICT DO NOTHING",
                    [(source, row_id, reason) for row_id, reason in altered],
                )
            c.execute(
                "INSERT INTO flow_versions SELECT id, version, nodes, edges, updated_at FROM owui_flows"
                " ON CONFLICT DO NOTHING"
            )
            n_flows = _changed(
                c.execute(
                    "INSERT INTO flows (id, user_id, name, description, nodes, edges, meta, access_control,"
                    " created_at, updated_at, version) SELECT id, user_id, name, description, nodes, edges,"
                    " meta, access_control, created_at, updated_at, version FROM owui_flows"
                    " ON CONFLICT DO NOTHING"
                )
            )
        finally:
            for name in ("owui_users", "owui_groups", "owui_members", "owui_flows"):
                c.unregister(name)
        return n_users, n_groups, n_flows

    summary.users, summary.groups, summary.flows = ctx.write_registry(write)


def _changed(cursor: Connection) -> int:
    row = one_row(cursor)
    return int(row[0]) if row else 0


# -- runs ------------------------------------------------------------------------------------


# Text that DuckDB's JSON reader accepts and orjson (the detail's reader) refuses: NaN and
# Infinity in any case, numbers past a double (>= 200 integer digits or a 3-digit exponent),
# trailing commas, and nesting deeper than a posted run may have (orjson writes 254 levels at
# most: a posted run nested deeper is refused, and an imported one's detail answered 500). Only
# texts that match are parsed by orjson, to confirm; a match inside a string costs that parse and
# nothing else. (A token starts after `[`, `:`, `,` or a space: the editor's node ids hold runs
# like `3e706`.) The same rule for all five columns.
_ORJSON_REFUSES = (
    r"(?i)(?:^|[\[:,\s])(?:[-+]?(?:nan|inf|[0-9][0-9.]*e[-+]?[0-9]{3}|[0-9]{20})|-[0-9]{19})"
    r"|[0-9]{200}|,\s*[\]}]"
)
# the integers orjson reads exactly (u64 and i64); past them, the nearest float (20 digits, or a
# negative one of 19, and more: such a token makes a row suspect, parsed to confirm)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_DEPTH = 254  # what orjson.dumps writes (jsonio.stored_text refuses a posted run past it)


def _orjson_reason(name: str, text: str) -> str:
    """Why a posted run could not hold this text as `name` ('' when it could): orjson must read
    it, and write it back (the depth a posted run's payload may have)."""
    try:
        value = _json_or_none(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:
            return f"{name} is nested more than {_MAX_DEPTH} levels deep"
        return f"{name} is not JSON"
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return f"{name} is nested more than {_MAX_DEPTH} levels deep"
    return ""


def _big_integers(text: str) -> bool:
    """The JSON text holds an integer of 64 bits or more (a 20-digit token started the suspicion;
    Python's json, which reads integers exactly, confirms it is a number, not inside a string)."""
    found = False

    def integer(token: str) -> int:
        nonlocal found
        value = int(token)
        found = found or not _INT_MIN <= value <= _INT_MAX
        return 0

    try:
        json.loads(text, parse_int=integer)
    except (ValueError, RecursionError):
        return False
    return found


def _orjson_verdicts(chunk: pa.Table) -> tuple[pa.Array[Any], pa.Array[Any]]:
    """Per row, why orjson would refuse a payload or meta DuckDB accepts ('' when it would not),
    the first such column named; only the rows that could fail are parsed. And per row the
    payloads (stored) holding an integer past 64 bits, which a run's detail answers as the
    nearest float, as orjson reads it ('' for none).

    An output that copies node_results comes as '' (Source.runs): it is checked as the text it
    is, node_results'."""
    n = chunk.num_rows
    suspect = np.zeros(n, np.bool_)
    for name in _PAYLOADS:
        col = chunk.column(name)
        suspect |= pc.match_substring_regex(col, _ORJSON_REFUSES).to_numpy(zero_copy_only=False)
        suspect |= opening_brackets(col) > _MAX_DEPTH
    copies = chunk.column("outputs_copy")
    bad: list[str] = [""] * n
    big: list[str] = [""] * n
    for i in np.flatnonzero(suspect).tolist():
        texts = {name: chunk.column(name)[i].as_py() for name in _PAYLOADS}
        if copies[i].as_py():
            texts["outputs"] = texts["node_results"]
        bad[i] = next((r for name in _PAYLOADS if (r := _orjson_reason(name, texts[name]))), "")
        if not bad[i]:
            big[i] = ", ".join(name for name in _PAYLOADS if _big_integers(texts[name] or "null"))
    return pa.array(bad, pa.string()), pa.array(big, pa.string())


# a created_at a run may have: from year 1 (Python's first) to a day ahead, as a posted run's;
# out of it, the run is skipped (make_timestamp would overflow, or a detail could not answer it)
_TIME_OK = "{at} BETWEEN -62135596800 AND epoch(get_current_timestamp()) + 86400"


def _text_or_null(name: str) -> str:
    return f"CASE WHEN c.{name} IN ('', 'null') THEN NULL ELSE c.{name} END"


# valid JSON that is not an object or null (a list, a string, a number): the contract's payloads
# and meta are objects, and a detail could not answer one (its first character tells, once valid)
_NOT_OBJECTS = "\n".join(
    f"WHEN left(ltrim(c.{name}, ' \t\n\r'), 1) NOT IN ('', '{{', 'n') THEN '{name} is not a JSON object or null'"
    for name in _PAYLOADS
)

# a rule-breaking status and execution_time, as the report says them and as meta keeps the
# original: a status that is NULL is kept as null, one that is not UTF-8 as its bytes in hex
# (`status_hex`); an execution_time as read (a number, null, or the text it was)
_STATUS_KEPT = (
    "CASE WHEN c.status_hex <> '' THEN '\"status_hex\":\"' || c.status_hex || '\"'"
    " WHEN c.status_null = 1 THEN '\"status\":null'"
    " ELSE '\"status\":' || CAST(to_json(c.status) AS VARCHAR) END"
)
_STATUS_SAID = (
    "CASE WHEN c.status_hex <> '' THEN 'x''' || c.status_hex || ''' (bytes that are not UTF-8 text)'"
    " WHEN c.status_null = 1 THEN 'null' ELSE CAST(to_json(c.status) AS VARCHAR) END"
)
_TIME_KEPT = "CASE WHEN c.execution_time_raw <> '' THEN c.execution_time_raw ELSE CAST(c.execution_time AS VARCHAR) END"
_TIME_BAD = f"c.execution_time IS NULL OR c.execution_time < 0 OR c.execution_time > {_MAX_MS}"

# the payloads that were '' in Open WebUI (`empty_mask`, a bit each), named
_EMPTY_NAMES = ", ".join(
    f"CASE WHEN c.empty_mask & {1 << i} <> 0 THEN '{name}' END" for i, name in enumerate(_PAYLOADS)
)

# the chunk reshaped into the stored row, all but what needs the store (the flow): payloads
# checked once (node_results by the facts' own parse), kept as the source's text. meta gets
# `openwebui_import` (the originals) as text: json_merge_patch would drop an original null.
_PREPARE = f"""
    SELECT c.rn, c.id, c.flow_id, c.user_id, c.status, c.execution_time, c.created_at, c.mended, c.merged,
        n.early_reason,
        n.json_reason, n.status_bad, n.time_bad, n.status_note, n.time_note,
        CASE WHEN c.created_at_raw <> '' THEN 'created_at ' || c.created_at_raw
            || ' has a fraction of a second: stored rounded down to the second, as ' || c.created_at END AS at_note,
        CASE WHEN c.empty_mask <> 0 THEN concat_ws(', ', {_EMPTY_NAMES})
            || ' held empty text, which is not JSON: stored as no value (null; meta as {{}})' END AS empty_note,
        CASE WHEN c.big_ints <> '' THEN c.big_ints || ' holds an integer past 64 bits: a run''s detail answers'
            || ' it as the nearest float (as for a posted run)' END AS big_note,
        CASE WHEN n.source_value IS NOT NULL THEN 'meta.openwebui_import was in Open WebUI already: kept under'
            || ' meta.openwebui_import.source_value (the import''s note on the run took its place)' END AS meta_note,
        n.same AS outputs_same,
        CASE WHEN n.kept_meta = '{{}}' THEN '{{"openwebui_import":' || n.originals || '}}'
             ELSE substr(n.kept_meta, 1, length(n.kept_meta) - 1) || ',"openwebui_import":' || n.originals || '}}'
        END AS meta_merged,
        f.node_count, f.tokens_in, f.tokens_out, f.tokens_estimated, f.cost, f.nodes
    FROM owui_raw c
    JOIN (
        SELECT *,
            CASE WHEN json_reason IS NULL AND (status_note IS NOT NULL OR time_note IS NOT NULL) THEN
                '{{' || concat_ws(',', CASE WHEN status_note IS NOT NULL THEN status_kept END,
                                   CASE WHEN time_note IS NOT NULL THEN '"execution_time":' || time_kept END,
                                   CASE WHEN json_reason IS NULL AND meta_text IS NOT NULL
                                       THEN '"source_value":' || CAST(json_extract(meta_text, '$.openwebui_import') AS VARCHAR)
                                   END) || '}}'
            END AS originals,
            CASE WHEN json_reason IS NULL AND (status_note IS NOT NULL OR time_note IS NOT NULL) AND meta_text IS NOT NULL
                THEN json_extract(meta_text, '$.openwebui_import') END AS source_value,
            CASE WHEN json_reason IS NULL AND (status_note IS NOT NULL OR time_note IS NOT NULL) THEN
                CAST(json_merge_patch(meta_text, '{{"openwebui_import":null}}') AS VARCHAR)
            END AS kept_meta
        FROM (
        SELECT c.rn,
            c.outputs_copy = 1 AND c.node_results NOT IN ('', 'null') AS same,
            c.status NOT IN ('success', 'error', 'aborted') AS status_bad,
            {_TIME_BAD} AS time_bad,
            CASE WHEN c.status NOT IN ('success', 'error', 'aborted') THEN 'status ' || {_STATUS_SAID}
                || ' is not success, error or aborted: stored as error, the original in meta.openwebui_import.'
                || CASE WHEN c.status_hex <> '' THEN 'status_hex (its bytes in hex)' ELSE 'status' END
            END AS status_note,
            CASE WHEN {_TIME_BAD} THEN 'execution_time ' || {_TIME_KEPT}
                    || ' is not a duration in ms: stored as 0, the original in meta.openwebui_import.execution_time'
                WHEN c.execution_time_raw <> '' THEN 'execution_time ' || c.execution_time_raw
                    || ' is not a whole number of ms: stored rounded, as ' || c.execution_time
                    || ', the original in meta.openwebui_import.execution_time'
            END AS time_note,
            CASE WHEN c.status NOT IN ('success', 'error', 'aborted') THEN {_STATUS_KEPT} END AS status_kept,
            CASE WHEN c.execution_time_raw <> '' OR {_TIME_BAD} THEN {_TIME_KEPT} END AS time_kept,
            -- only for the rows whose meta gets the originals (most rows have none)
            CASE WHEN c.status NOT IN ('success', 'error', 'aborted') OR c.execution_time_raw <> '' OR {_TIME_BAD}
                THEN coalesce({_text_or_null("meta")}, '{{}}') END AS meta_text,
            CASE
                WHEN TRY_CAST(c.id AS UUID) IS NULL THEN 'id is not a UUID'
                WHEN c.dup_of <> '' THEN 'the same id as ' || c.dup_of
                    || ' (one UUID written two ways): that row is the one imported'
                WHEN c.copy_note <> '' THEN c.copy_note
                WHEN c.created_at IS NULL THEN 'no created_at'
                WHEN NOT {_TIME_OK.format(at="c.created_at")} THEN 'created_at ' || c.created_at
                    || ' is not a time in epoch seconds up to a day ahead (the rule for a posted run)'
                WHEN c.user_id_hex <> '' THEN 'user_id x''' || c.user_id_hex || ''' is not text (not UTF-8)'
                WHEN c.user_id = '' THEN 'no user_id'
                WHEN c.flow_id_hex <> '' THEN 'flow_id x''' || c.flow_id_hex || ''' is not text (not UTF-8)'
            END AS early_reason,
            CASE
                WHEN c.inputs <> '' AND NOT json_valid(c.inputs) THEN 'inputs is not JSON'
                WHEN c.outputs <> '' AND NOT json_valid(c.outputs) THEN 'outputs is not JSON'
                WHEN c.outputs_copy = 1 AND c.node_results <> '' AND s.m IS NULL AND NOT json_valid(c.node_results)
                    THEN 'outputs is not JSON'
                WHEN c.node_results <> '' AND s.m IS NULL AND NOT json_valid(c.node_results)
                    THEN 'node_results is not JSON'
                WHEN c.errors <> '' AND NOT json_valid(c.errors) THEN 'errors is not JSON'
                WHEN c.meta <> '' AND NOT json_valid(c.meta) THEN 'meta is not JSON'
                WHEN c.py_bad <> '' THEN c.py_bad
                {_NOT_OBJECTS}
            END AS json_reason
        FROM owui_raw c JOIN nf_src s USING (rn)
        )
    ) n USING (rn)
    JOIN nf_result f USING (rn)
    ORDER BY c.rn
"""


def _prepare(con: duckdb.DuckDBPyConnection, ctx: Context, chunk: pa.Table) -> pa.Table:
    """The chunk as rows ready to store, on the import's private DuckDB (not the store's writer):
    JSON checked, node facts computed in bulk (node_facts_columnar, ingest's rules), meta merged.
    The payload columns come out typed as JSON (Arrow's json extension), so the insert does not
    parse them again."""
    py_bad, big = _orjson_verdicts(chunk)
    raw = (
        chunk.append_column("rn", pa.array(range(chunk.num_rows), pa.int64()))
        .append_column("py_bad", py_bad)
        .append_column("big_ints", big)
    )
    con.register("owui_raw", raw)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW owui_runs AS SELECT rn, node_results, errors, inputs,"
            " coalesce(CASE WHEN " + _TIME_OK.format(at="created_at") + " THEN"
            " CAST(make_timestamp(created_at * 1000000) AS DATE) END, current_date) AS day FROM owui_raw"
        )
        facts_into(con, "owui_runs", ctx.prices)
        prepared: pa.Table = con.sql(_PREPARE).to_arrow_table()
    finally:
        con.unregister("owui_raw")
    # the payloads themselves go to the writer as read (in rn order, as `prepared`), not copied
    # through DuckDB; typed as JSON, so the insert does not parse them ('' and 'null' are never
    # stored: the insert makes them NULL)
    for name in _PAYLOADS:
        prepared = prepared.append_column(pa.field(name, pa.json_()), chunk.column(name).cast(pa.json_()))
    return prepared


# a row whose id is a UUID written another way (capitals, braces, no dashes) while a run with that
# UUID is stored already (imported from its other spelling, read earlier): nothing of this row is
# stored, so it is skipped, not reported as stored under the usual spelling. Filtered to such
# rows before the store's ids are joined (there are usually none)
_RESPELLED = """
    CREATE OR REPLACE TEMP TABLE owui_respelled AS
    SELECT c.id FROM (SELECT id, TRY_CAST(id AS UUID) AS uid FROM owui_chunk) c
    WHERE c.uid IS NOT NULL AND CAST(c.uid AS VARCHAR) <> c.id
      AND EXISTS (SELECT 1 FROM executions e WHERE e.id = c.uid)
"""

_CLASSIFY = """
    CREATE OR REPLACE TEMP TABLE owui_classified AS
    SELECT c.rn, c.id, c.flow_id, c.status, c.execution_time, c.created_at, c.status_note, c.time_note, c.mended, c.merged,
        c.at_note, c.empty_note, c.big_note, c.meta_note, f.version AS f_version, f.updated_at AS f_updated,
        coalesce(c.early_reason,
                 CASE WHEN f.id IS NULL THEN 'orphan: flow ' || c.flow_id || ' is in neither Open WebUI nor flowhistory' END,
                 c.json_reason,
                 CASE WHEN r.id IS NOT NULL THEN 'the same id as run ' || CAST(CAST(c.id AS UUID) AS VARCHAR)
                     || ', stored already (its id written the usual way): the UUID in another spelling' END
        ) AS skip_reason
    FROM owui_chunk c LEFT JOIN flows f ON f.id = c.flow_id LEFT JOIN owui_respelled r ON r.id = c.id
"""

_ISSUES = """
    INSERT INTO openwebui_import_issues
    SELECT ?, id, 'skipped', skip_reason FROM owui_classified WHERE skip_reason IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', status_note FROM owui_classified WHERE skip_reason IS NULL AND status_note IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', time_note FROM owui_classified WHERE skip_reason IS NULL AND time_note IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', 'id is a UUID written another way: stored as ' || CAST(CAST(id AS UUID) AS VARCHAR)
    FROM owui_classified WHERE skip_reason IS NULL AND CAST(CAST(id AS UUID) AS VARCHAR) <> id
    UNION ALL
    SELECT ?, id, 'altered', 'a payload held half of a character (a lone UTF-16 surrogate escape, as the'
        || ' editor writes an emoji it spreads): stored as U+FFFD'
        || CASE WHEN merged THEN '; two keys of one object differed only in such halves, so they read'
            || ' as one key and only the last one''s value is answered' ELSE '' END
    FROM owui_classified WHERE skip_reason IS NULL AND mended
    UNION ALL
    SELECT ?, id, 'altered', at_note FROM owui_classified WHERE skip_reason IS NULL AND at_note IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', empty_note FROM owui_classified WHERE skip_reason IS NULL AND empty_note IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', big_note FROM owui_classified WHERE skip_reason IS NULL AND big_note IS NOT NULL
    UNION ALL
    SELECT ?, id, 'altered', meta_note FROM owui_classified WHERE skip_reason IS NULL AND meta_note IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING id, action, reason
"""


def _json_or_null(name: str) -> str:
    return f"CASE WHEN CAST(c.{name} AS VARCHAR) IN ('', 'null') THEN NULL ELSE c.{name} END"


# the payloads arrive typed as JSON (checked by _prepare), so nothing here parses them
_INSERT = f"""
    INSERT INTO executions
    SELECT CAST(c.id AS UUID), c.flow_id, c.user_id,
        CASE WHEN c.status_bad THEN 'error' ELSE c.status END,
        CASE WHEN c.time_bad THEN 0 ELSE c.execution_time END,
        make_timestamp(c.created_at * 1000000),
        {_json_or_null("inputs")},
        CASE WHEN c.outputs_same THEN NULL ELSE {_json_or_null("outputs")} END,
        c.outputs_same,
        {_json_or_null("node_results")},
        {_json_or_null("errors")},
        CASE WHEN c.meta_merged IS NOT NULL THEN CAST(c.meta_merged AS JSON)
             ELSE coalesce({_json_or_null("meta")}, CAST('{{}}' AS JSON)) END,
        c.node_count, c.tokens_in, c.tokens_out, c.tokens_estimated, c.cost,
        CASE WHEN c.created_at >= epoch(k.f_updated) THEN k.f_version ELSE '{UNKNOWN_VERSION}' END,
        NULL,
        c.nodes
    FROM owui_chunk c JOIN owui_classified k USING (rn) WHERE k.skip_reason IS NULL
    ON CONFLICT DO NOTHING
"""

_DIRTY = """
    INSERT OR IGNORE INTO rollup_dirty
    SELECT DISTINCT flow_id, CAST(make_timestamp(created_at * 1000000) AS DATE) FROM owui_classified
    WHERE skip_reason IS NULL
      AND make_timestamp(created_at * 1000000) < (SELECT max(rolled_until) FROM rollup_state)
"""


@dataclass(frozen=True, slots=True)
class _ChunkResult:
    stored: int
    skipped: int  # rows: two rows with one id may both be skipped
    flow_ids: set[str]
    issues: list[tuple[str, str, str]]
    counted: Recount  # the flows' counters as this chunk's transaction left them


def _write_chunk(source: str, chunk: pa.Table, last: tuple[int, str]) -> Callable[[Connection], _ChunkResult]:
    def write(c: Connection) -> _ChunkResult:
        c.register("owui_chunk", chunk)
        try:
            c.execute(_RESPELLED)
            c.execute(_CLASSIFY)
            issues = c.execute(_ISSUES, [source] * _ISSUES.count("?")).fetchall()
            skipped = one_row(c.execute("SELECT count(*) FROM owui_classified WHERE skip_reason IS NOT NULL"))
            row = one_row(c.execute(_INSERT))
            stored = int(row[0]) if row else 0
            c.execute(_DIRTY)  # stored runs of already rolled days: those days are rebuilt
            flow_ids = {
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT flow_id FROM owui_classified WHERE skip_reason IS NULL"
                ).fetchall()
            }
            c.execute(
                "INSERT INTO openwebui_import_progress VALUES (?, ?, ?, ?, ?, now())"
                " ON CONFLICT (source) DO UPDATE SET last_created_at = excluded.last_created_at,"
                " last_id = excluded.last_id, runs_read = runs_read + excluded.runs_read,"
                " runs_stored = runs_stored + excluded.runs_stored, updated_at = excluded.updated_at",
                [source, last[0], last[1], chunk.num_rows, stored],
            )
            c.execute("INSERT INTO openwebui_import_ids SELECT ?, id FROM owui_chunk", [source])
            c.execute("DROP TABLE owui_classified")
            c.execute("DROP TABLE owui_respelled")
            # read in the chunk's transaction, installed after its commit: stats, the list's total
            # and its remembered page starts follow each chunk, not the import's end
            counted = Counters.count(c, flow_ids)
        finally:
            c.unregister("owui_chunk")
        return _ChunkResult(
            stored, int(skipped[0]) if skipped else 0, flow_ids, [(r[0], r[1], r[2]) for r in issues], counted
        )

    return write


def _stored_so_far(ctx: Context, key: str) -> int:
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT coalesce(sum(runs_stored), 0) FROM openwebui_import_progress WHERE list_contains(?, source)",
            [_names_of(c, key)],
        ).fetchall()
    )
    return int(rows[0][0]) if rows else 0


_Chunk = tuple[pa.Table, tuple[int, str]]


def _mended(chunk: pa.Table) -> pa.Table:
    """The payloads with lone surrogate escapes read as U+FFFD (core/json_text.py: the editor's
    spread of an emoji), `mended`, which rows that changed (reported as altered), and `merged`,
    which of those then have two keys that read the same (reported: one value is not read)."""
    mended = np.zeros(chunk.num_rows, np.bool_)
    merged = np.zeros(chunk.num_rows, np.bool_)
    for name in _PAYLOADS:
        column, changed, keys_merged = mend_column(chunk.column(name))
        chunk = chunk.set_column(chunk.schema.get_field_index(name), name, column)
        mended |= changed
        merged |= keys_merged
    return chunk.append_column("mended", pa.array(mended)).append_column("merged", pa.array(merged))


def _duplicates(keys: pa.Table) -> pa.Table:
    """The rows whose id is a UUID another row of the source has too, written another way
    (capitals, no dashes), each with the id of the one imported (`first`): the earliest
    created_at, at a tie the usual spelling, then the id's bytes. Computed over the whole source
    (`keys` from the start), so a rerun or a resume picks the same one, whatever the chunks.
    Rows with the very same id are one id here (both were named "the same id as" it, and
    neither imported): their chunk picks one of them (`_copies`)."""
    con = duckdb.connect()
    try:
        con.register("owui_keys", keys)
        found: pa.Table = con.sql(
            """WITH k AS (SELECT id, min(created_at) AS created_at, TRY_CAST(id AS UUID) AS u FROM owui_keys
                          GROUP BY id),
               twice AS (SELECT u FROM k WHERE u IS NOT NULL GROUP BY u HAVING count(*) > 1)
            SELECT id, first FROM (
                SELECT id, first_value(id) OVER w AS first, row_number() OVER w AS n FROM k JOIN twice USING (u)
                WINDOW w AS (PARTITION BY u ORDER BY created_at, CAST(u AS VARCHAR) <> id, id))
            WHERE n > 1"""
        ).to_arrow_table()
    finally:
        con.close()
    return found


_NOT_UTF8_CHECKED = ("flow_id", "user_id", "status")


def _utf8_checked(chunk: pa.Table) -> pa.Table:
    """The chunk with text that is not UTF-8 (SQLite keeps any bytes in a TEXT column) made ''
    in flow_id, user_id and status, its bytes in hex in `<name>_hex` (the rules then skip the run,
    or keep a bad status's bytes in meta); one such value aborted the whole import. Each column is
    validated in one pass; only a column that fails is looked at row by row."""
    n = chunk.num_rows
    for name in (*_NOT_UTF8_CHECKED, "execution_time_raw"):
        index = chunk.schema.get_field_index(name)
        column = chunk.column(index)
        hexes = [""] * n
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            texts: list[str] = []
            for i, value in enumerate(column.combine_chunks().view(pa.binary()).to_pylist()):
                value = value or b""  # never NULL (Source.text)
                try:
                    texts.append(value.decode())
                except UnicodeDecodeError:
                    hexes[i] = value.hex() if name != "execution_time_raw" else value[1:-1].hex()
                    # an execution_time that is text, not UTF-8: kept as the string "x'<hex>'"
                    texts.append("" if name != "execution_time_raw" else f"\"x'{hexes[i]}'\"")
            chunk = chunk.set_column(index, name, pa.array(texts, pa.string()))
        if name != "execution_time_raw":
            chunk = chunk.append_column(f"{name}_hex", pa.array(hexes, pa.string()))
    return chunk


@dataclass(frozen=True, slots=True)
class _Plan:
    """What this import reads: `todo`, the ids of the source's rows no import has read yet, each
    once, in the source's order (its first row's created_at; `n` rows have it, `blob` and `text`
    say whether SQLite keeps one of them as a BLOB, one as text), and `dups`; `unreadable`, the
    labels of those whose id is no text (skipped without being read), `unreadable_rows` their
    rows; `done`, the source's rows read before."""

    todo: pa.Table
    dups: pa.Table
    unreadable: list[str]
    unreadable_rows: int
    done: int
    total: int


_NO_ID = "no id (NULL or empty)"


def _labelled(keys: pa.Table) -> tuple[pa.Table, np.ndarray[Any, Any]]:
    """The keys with each id as text: an id that is not UTF-8 as `x'<hex>'`, the label its
    report line and the ledger know it by. And which rows have no readable id (those, and ''
    ids, which `Source.runs` cannot fetch). Validated in one pass; only a failing column is
    looked at row by row."""
    ids = keys.column("id")
    try:
        text = ids.cast(pa.string())
        text.validate(full=True)
    except pa.ArrowInvalid:
        labels = []
        for raw in ids.to_pylist():
            raw = raw or b""
            try:
                labels.append(raw.decode())
            except UnicodeDecodeError:
                labels.append(f"x'{raw.hex()}'")
        text = pa.chunked_array([pa.array(labels, pa.string())])
    bad = pc.or_(pc.equal(text, pa.scalar("")), pc.not_equal(text.cast(pa.binary()), ids)).to_numpy(
        zero_copy_only=False
    )
    return keys.set_column(0, "id", text), bad


def _plan(ctx: Context, src: Source) -> _Plan:
    """The rows of the source no import has read yet: all of the source's keys (read at
    once: the duplicates are judged over the whole source, so a rerun picks the same first) less
    the ids in the ledger, an anti-join in the store. A run Open WebUI saved after the last
    import, whatever its created_at (a clock stepped back, a row committed late), is read by the
    next one; a run read once is never read again (one deleted here since, by retention or by
    hand, does not come back)."""
    keys, bad = _labelled(src.keys())
    keys = keys.append_column("bad", pa.array(bad)).append_column("rn", pa.array(np.arange(keys.num_rows)))

    def unread(c: Connection) -> pa.Table:
        c.register("owui_keys", keys)
        try:
            # read by any import, whatever the source's URL said: the same file or database
            # written another way (`//`, a password, `?sslmode=`) brought deleted runs back
            # each id once (a flow_execution without its primary key may hold one twice, and
            # both rows, fetched by it, come in one chunk), and a SQLite BLOB id fetched as one
            found: pa.Table = c.sql(
                "SELECT id, min(created_at) AS created_at, bool_or(bad) AS bad, bool_or(blob = 1) AS blob,"
                " bool_or(blob = 0) AS text, count(*) AS n FROM owui_keys k WHERE NOT EXISTS (SELECT 1 FROM"
                " openwebui_import_ids l WHERE l.id = k.id) GROUP BY id ORDER BY min(rn)"
            ).to_arrow_table()
        finally:
            c.unregister("owui_keys")
        return found

    todo = ctx.store.read(unread)
    flagged = todo.column("bad").to_numpy(zero_copy_only=False)
    skipped = todo.filter(pa.array(flagged))
    unreadable = [str(i) for i in skipped.column("id").to_pylist()]
    unreadable_rows = int(pc.sum(skipped.column("n")).as_py() or 0)
    todo = todo.filter(pa.array(~flagged)).drop_columns(["bad"])
    return _Plan(
        todo,
        _duplicates(keys.filter(pa.array(~bad))),
        unreadable,
        unreadable_rows,
        keys.num_rows - int(pc.sum(todo.column("n")).as_py() or 0) - unreadable_rows,
        keys.num_rows,
    )


def _skip_unreadable(source: str, labels: list[str]) -> Callable[[Connection], int]:
    """The rows whose id is no text skipped, each label with its report line, and into the ledger."""
    rows = pa.table(
        {
            "id": pa.array(labels, pa.string()),
            "reason": [
                _NO_ID if label == "" else f"id {label} is not UTF-8 text (not a UUID)" for label in labels
            ],
        }
    )

    def write(c: Connection) -> int:
        c.register("owui_unreadable", rows)
        try:
            new = c.execute(
                "INSERT INTO openwebui_import_issues SELECT ?, id, 'skipped', reason FROM owui_unreadable"
                " ON CONFLICT DO NOTHING RETURNING id",
                [source],
            ).fetchall()
            c.execute("INSERT INTO openwebui_import_ids SELECT ?, id FROM owui_unreadable", [source])
        finally:
            c.unregister("owui_unreadable")
        return len(new)

    return write


def _chunks(src: Source, plan: _Plan, size: int, budget: int) -> Iterator[_Chunk]:
    """Chunks of at most `size` runs and about `budget` bytes: the first is a probe of up to
    1,000 runs, each next one sized by the bytes a run took in the one before. A chunk that
    found none of its rows (deleted since they were listed) is left out."""
    keys, dups = plan.todo, plan.dups
    start, rows = 0, min(size, 1_000)
    while start < keys.num_rows:
        part = keys.slice(start, rows)
        start += part.num_rows
        chunk_ids = [str(i) for i in part.column("id").to_pylist()]
        texts, blobs = chunk_ids, []
        if pc.any(part.column("blob")).as_py():  # rare: a SQLite BLOB id is fetched as a BLOB
            texts = [str(i) for i in part.filter(part.column("text")).column("id").to_pylist()]
            blobs = [str(i) for i in part.filter(part.column("blob")).column("id").to_pylist()]
        table = src.runs(texts, blobs)
        listed = int(pc.sum(part.column("n")).as_py() or 0)
        if table.num_rows < listed:
            log.warning(
                "%s: %d of the %d runs listed were not there when read (deleted meanwhile)",
                redacted(src.url),
                listed - table.num_rows,
                listed,
            )
        if table.num_rows == 0:
            continue
        table = _mended(_utf8_checked(table))
        first = pc.take(dups.column("first"), pc.index_in(table.column("id"), value_set=dups.column("id")))
        table = table.append_column("dup_of", first.fill_null(pa.scalar("")))
        # more rows than ids: some id is there twice (rare); their notes are worked out apart
        copies = _copies(table) if table.num_rows > part.num_rows else pa.repeat("", table.num_rows)
        table = table.append_column("copy_note", copies)
        yield table, (part.column("created_at")[-1].as_py(), chunk_ids[-1])
        rows = max(1, min(size, budget * table.num_rows // max(table.nbytes, 1)))


def _copies(chunk: pa.Table) -> pa.Array[Any]:
    """Per row, why it is skipped as a copy ('' when it is not one): of the rows with the very
    same id (a flow_execution without its primary key), the first (the earliest created_at, at a
    tie the first saved: SQLite's rowid) can be imported, the others are skipped, each its own line.
    Both were skipped as "the same id as" each other, and the report said one was imported.
    Rows with one id are always in one chunk (`_plan` lists each id once), so the choice is
    made once, for good."""
    con = duckdb.connect()
    try:
        rows = chunk.select(["id", "created_at", "row_key"])
        con.register("owui_copies", rows.append_column("rn", pa.array(np.arange(chunk.num_rows))))
        found = con.sql(
            """SELECT rn, n, k, first_at, created_at FROM (
                SELECT rn, created_at, count(*) OVER (PARTITION BY id) AS n, row_number() OVER w AS k,
                    first_value(created_at) OVER w AS first_at
                FROM owui_copies
                WINDOW w AS (PARTITION BY id ORDER BY created_at NULLS LAST, row_key, rn))
            WHERE n > 1 AND k > 1"""
        ).fetchall()
    finally:
        con.close()
    notes = [""] * chunk.num_rows
    for rn, n, k, first_at, at in found:
        notes[rn] = (
            f"{n} rows of flow_execution have this id (the table lacks its primary key): only the first"
            f" (the earliest created_at, at a tie the first saved) can be imported, created_at {_said(first_at)};"
            f" this is row {k} of them, created_at {_said(at)}"
        )
    return pa.array(notes, pa.string())


def _said(at: int | None) -> str:
    return "none" if at is None else str(at)


def _read_ahead(chunks: Iterator[_Chunk]) -> Generator[_Chunk, None, None]:
    """The next chunk is read on a thread of its own while the caller prepares this one (the
    drivers release the GIL while they read)."""
    with ThreadPoolExecutor(1, thread_name_prefix="openwebui-read") as pool:
        ahead = pool.submit(next, chunks, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, chunks, None)
            yield item


def _private_duckdb() -> duckdb.DuckDBPyConnection:
    """An import's own DuckDB for its thread: one thread (with the reader and the writer, four
    busy threads share the two cores), no memory bound of its own (a chunk is ~CHUNK_BYTES)."""
    con = duckdb.connect()
    con.execute(f"SET threads = {PREPARE_THREADS}")
    return con


def _prepare_on(preparers: Preparers, ctx: Context, chunk: pa.Table) -> pa.Table:
    return _prepare(preparers.connection(), ctx, chunk)


def import_openwebui(
    ctx: Context,
    url: str,
    *,
    report: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    chunk_bytes: int = CHUNK_BYTES,
    on_progress: Callable[[int, int], None] | None = None,
    fail_after_chunks: int | None = None,
    max_chunks: int | None = None,
) -> ImportSummary:
    """Copy Open WebUI's users, groups, flows and runs into the store; see the module docstring.

    `on_progress(done, total)` is called after each chunk; `fail_after_chunks` is the test seam
    that stops the import as a kill would, after that many committed chunks. `max_chunks` stops
    cleanly after that many (`finished` False): the server imports in steps, so a client can
    show progress and a request never runs for minutes.
    """
    import time

    started = time.perf_counter()
    try:
        urlsplit(url)
    except ValueError as exc:  # an IPv6 host left unclosed (`[::1`): it was a 500
        raise InvalidInput(f"from: not a database URL ({exc})", field="from") from None
    summary = ImportSummary(redacted(url))
    source = source_key(url)  # what the report and the counts are kept under
    src = Source(url, ctx.settings.openwebui_timeout_s)
    try:
        ctx.store.write(lambda c: [c.execute(ddl) for ddl in _STATE_DDL])
        _import_identity(ctx, src, summary, source)
        plan = _plan(ctx, src)
        total, done = plan.total, plan.done
        if plan.unreadable:  # skipped unread: their ids cannot even be asked for
            ctx.store.write(_skip_unreadable(source, plan.unreadable))
            summary.runs_skipped += plan.unreadable_rows
            summary.runs_read += plan.unreadable_rows
            done += plan.unreadable_rows
        if on_progress:
            on_progress(done, total)
        touched: set[str] = set()
        summary.total_in_source = total
        summary.finished = True
        # a pipeline: the next chunk is read while two are prepared (on the preparing threads of
        # history/preparing.py, each on a private DuckDB: prep, ~58 us a run, was the slowest
        # stage) and the writer inserts the one before them, each on a thread that releases the
        # GIL; chunks are written in order (the progress key)
        pending: tuple[Future[_ChunkResult], int] | None = None
        preparers = Preparers(_private_duckdb)
        preparing: deque[tuple[Future[pa.Table], int, tuple[int, str]]] = deque()
        chunks = _read_ahead(_chunks(src, plan, chunk_rows, chunk_bytes))
        written = 0

        def settle() -> None:
            nonlocal pending, done, touched
            if pending is None:
                return
            future, rows = pending
            pending = None
            result = future.result()
            summary.runs_read += rows
            summary.runs_stored += result.stored
            touched |= result.flow_ids
            # runs, not lines: a run may be altered for more than one reason
            summary.runs_skipped += result.skipped
            summary.runs_altered += len({i[0] for i in result.issues if i[1] == "altered"})
            done += rows
            if on_progress:
                on_progress(done, total)

        def write_next() -> None:
            nonlocal pending, written
            future, rows, last = preparing.popleft()
            if fail_after_chunks is not None and written >= fail_after_chunks:
                settle()
                raise InjectedFailure(f"stopped after {written} chunks (test seam)")
            prepared = future.result()
            settle()
            write = _write_chunk(source, prepared, last)
            pending = (ctx.store.submit(write, after_commit=lambda r: ctx.counters.install(r.counted)), rows)
            written += 1

        try:
            for taken, (chunk, last) in enumerate(chunks):
                if max_chunks is not None and taken >= max_chunks:
                    summary.finished = False
                    break
                preparing.append((preparers.submit(_prepare_on, preparers, ctx, chunk), chunk.num_rows, last))
                if len(preparing) >= PREPARE_WORKERS:
                    write_next()
            while preparing:
                write_next()
            settle()
        finally:
            chunks.close()  # waits for a read in flight, before the source closes
            preparers.close(cancel=True)
            if pending is not None and pending[0].exception() is None:  # an error above: the
                touched |= pending[0].result().flow_ids  # chunk in flight committed (or failed whole)
            if touched:  # each chunk counted its runs as it committed (_write_chunk)
                ctx.notify_ingest(touched)
        summary.runs_already_there = summary.runs_read - summary.runs_stored - summary.runs_skipped
        summary.total_read = done
        summary.total_stored = _stored_so_far(ctx, source)
        summary.issues = _issues(ctx, source) if summary.finished else []
        if report is not None and summary.finished:
            write_report(report, summary.issues)
            summary.report = report
    finally:
        src.close()
        summary.seconds = time.perf_counter() - started
    return summary


def import_step(
    ctx: Context, url: str, *, max_chunks: int = 4, chunk_rows: int = CHUNK_ROWS
) -> ImportSummary:
    """One step of an import run by the server for an admin (the CLI while a server holds the
    store): the same path, `max_chunks` at a time; call again until `finished`."""
    return import_openwebui(ctx, url, max_chunks=max_chunks, chunk_rows=chunk_rows)


def _issues(ctx: Context, key: str) -> list[dict[str, str]]:
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT DISTINCT id, action, reason FROM openwebui_import_issues WHERE list_contains(?, source)"
            " ORDER BY action, id, reason",
            [_names_of(c, key)],
        ).fetchall()
    )
    return [{"id": r[0], "action": r[1], "reason": r[2]} for r in rows]


def write_report(path: Path, issues: list[dict[str, str]]) -> None:
    """Every skipped or altered id with its reason, one JSON object a line (the whole source's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for issue in issues:
            fh.write(json.dumps(issue) + "\n")
