"""The one object that owns the DuckDB file: a writer thread with group commit, and read cursors.

DuckDB lets one process open a file read-write, and one connection must not be used by two
threads at once. So every write goes through one named writer thread fed by a queue. The writer
takes what is waiting, applies it in one transaction (consecutive appends to the same table
become one Arrow insert), commits, and only then answers each caller: an acknowledged write has
been committed to the WAL and survives a crash of the process. If the transaction fails, each
task is retried alone, so only the bad one fails and the writer lives on. A batch of appends
to one table is a single INSERT, committed by itself. Reads run on a cursor per thread and see
the last committed state; they never wait for the writer.

`rebuild_file` gives disk space back while the store stays open: DuckDB only truncates free
blocks at the end of its file, so after deleting most of a store the file can stay nearly as
large as before. The writer copies every table into a fresh file (no write can run meanwhile:
it is the writer), then, with readers paused for a moment, swaps the files and reopens.

A full disk: DuckDB's commit fails with "No space left on device", and so would a DELETE (its
WAL needs room too), leaving no way to free space. So a writable store keeps a reserve file
(`<store>.reserve`, `reserve_bytes`) beside it. The first write that fails for want of space
releases it and puts the store in "full" mode: writes are refused with StorageFull (no DuckDB
text, no path) without being tried, except those submitted with `frees_space` (deletes,
retention), which run in the released room (once: a delete that finds it used up is refused).
Full mode ends once such a write has committed, the checkpoint after it has run (its rows'
blocks are then free for new data) and the reserve could be made again, or once the disk has
room for the reserve and 4 MiB beside it (space freed outside). A reserve still missing after
that is made again by a later commit once the disk has that room. Reads never need the disk and
keep working.

Only the store's own disk puts it in full mode: a task that writes files elsewhere (the
retention archive, a backup) and runs out of room there fails alone, and the writer's
connection is cleaned after any failure (a rollback, or a fresh connection when a task left a
result open), so the next write commits as before.

A checkpoint that runs out of room is worse than a refused write: DuckDB raises a FATAL error and
invalidates the database, every later read and write fails until it is reopened. So DuckDB never
checkpoints on its own here (its threshold is set out of reach, its checkpoint at shutdown is off
when there is no room): the writer checkpoints after a commit once the WAL passes the store's
`checkpoint_threshold`, after a delete on a full disk, before a file swap and at close, each only
when the disk has room for it (twice the WAL plus a margin). Otherwise it is skipped and logged;
the WAL keeps every commit, and the checkpoint runs once there is room. Should DuckDB invalidate
the database anyway, the writer reopens it (the WAL replays) and readers move to new cursors.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import duckdb
import pyarrow as pa
from pydantic import ByteSize, TypeAdapter

from analytics.core.errors import (
    NotAStore,
    NotFound,
    StorageFull,
    StoreClosed,
    StoreLocked,
    StoreLost,
    StoreUnopenable,
    StoreUnwritable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = duckdb.DuckDBPyConnection
WriteFn = Callable[[Connection], Any]
AfterCommit = Callable[[Any], None]


@dataclass(slots=True)
class Rows:
    """Column lists for one table. Building Arrow once per commit, not per request, is what
    makes group commit cheap: pa.table() costs ~20 µs even for one row."""

    schema: pa.Schema
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def to_arrow(self) -> pa.Table:
        return pa.table(self.columns, schema=self.schema)


@dataclass(frozen=True, slots=True)
class Requires:
    """Keys the rows refer to, which must still be in `table.column` when they go in: a foreign
    key checked on the writer, so a row staged before a concurrent delete of its parent (a run
    of a flow deleted meanwhile) is refused instead of outliving it."""

    table: str
    column: str
    keys: frozenset[str]


class MissingKeys(LookupError):
    """An append's required keys that are gone: nothing of that append was stored."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(f"gone before the commit: {sorted(keys)}")
        self.keys = keys


@dataclass(slots=True)
class Append:
    """Rows to append, per table in the order given; merged with neighbours into one insert.

    Columns go in by position: each schema must list every column of its table, in order.
    """

    tables: dict[str, Rows | pa.Table]
    requires: Requires | None = None


@dataclass(slots=True)
class _Task:
    work: WriteFn | Append
    future: Future[Any] = field(default_factory=Future)
    after_commit: AfterCommit | None = None
    frees_space: bool = False


@dataclass(slots=True)
class _Rebuild:
    drain_s: float
    future: Future[Rebuilt] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A file swap: the rows of every table (checked equal in both files), the sizes, and how
    long new reads were held back (checkpoint, close, rename, reopen)."""

    tables: dict[str, int]
    bytes_before: int
    bytes_after: int
    seconds: float
    paused_seconds: float


@dataclass(slots=True)
class WriteStats:
    """Plain counters the writer keeps (no metrics library here: the API's collector reads them
    at scrape time). Only the writer thread changes them."""

    commits: int = 0  # group commits that succeeded
    committed_tasks: int = 0  # writes acknowledged by them
    failed_tasks: int = 0  # writes answered with an error (refusals on a full disk included)
    refused_full: int = 0  # of those, refused because the store's disk is full (StorageFull)
    rows: dict[str, int] = field(default_factory=dict)  # rows appended per table, committed
    last_batch: int = 0  # writes in the last group commit
    commit_seconds: float = 0.0  # total time spent in group commits


CommitListener = Callable[[int, float], None]  # (writes in the group commit, seconds it took)


@dataclass(slots=True)
class _Exclusive:
    """A function run on the writer's connection between commits, outside any transaction:
    nothing writes meanwhile (a consistent copy of the whole store)."""

    fn: WriteFn
    future: Future[Any] = field(default_factory=Future)


def _close_busy(cursors: list[Connection], wait_s: float = 5.0) -> None:
    """Close every cursor, interrupting one still in a query (a job the runtime's stop left
    running): DuckDB refuses to close a busy connection, and then the root's close failed too,
    so the server stopped without its checkpoint ("Application shutdown failed")."""
    pending = list(cursors)
    deadline = time.monotonic() + wait_s
    while pending:
        busy = []
        for cur in pending:
            try:
                cur.close()
            except duckdb.Error:  # busy in another thread's call: stop that call, try again
                with contextlib.suppress(Exception):
                    cur.interrupt()
                busy.append(cur)
            except Exception:  # already broken: nothing left to close
                continue
        if not busy or time.monotonic() > deadline:
            return
        pending = busy
        time.sleep(0.01)


class StoreBusy(RuntimeError):
    """The file swap did not run: a reader (a download stream) would have lost its cursor."""


_SHUTDOWN = object()
_PROBE = "flowhistory_swap_probe"
_DISK_FULL_TEXT = ("no space left on device", "file too large", "disk quota exceeded")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_RECOVER = object()
# DuckDB's own automatic checkpoint, out of reach: the writer checkpoints when there is room
NO_AUTO_CHECKPOINT = "1TB"
_DEFAULT_CHECKPOINT_AT = 16 << 20  # DuckDB's default checkpoint_threshold
# room a checkpoint needs beside the WAL's size: metadata and partly filled blocks
_CHECKPOINT_MARGIN = 4 << 20
FULL_DETAIL = (
    "the store's disk is full: this write was not stored. Reads still work; an admin can free "
    "space by deleting runs (a flow's or one run's DELETE, cleanup, a retention pass) or on the "
    "disk itself, and writes resume without a restart"
)
_UNWRITABLE_TEXT = ("read-only file system", "permission denied")
UNWRITABLE_DETAIL = (
    "the store's folder cannot be written (a read-only file system, or no permission): this write "
    "was not stored. Reads still work, and writes resume once the folder can be written"
)
UNOPENED_DETAIL = (
    "the store could not be reopened after DuckDB gave up on its file (its folder cannot be "
    "written?): nothing can be read or written now; it is tried again about once a second"
)
_DUCKDB_HEADERS = 3 * 4096  # a DuckDB file starts with its main header and two database headers
LOST_DETAIL = (
    "the store's file was removed or replaced while the server ran: this write was not stored, "
    "and no write is taken until an operator restores the store ({saved}) and restarts the server"
)
_RESCUED = "the server copied every write acknowledged before beside it, as {name}: restore that"
# the copy is made in the store's folder: removed with it, there is nowhere to copy to
_NOT_RESCUED = "copying what the server held failed, see its log: restore the latest backup"


def is_disk_full(exc: BaseException) -> bool:
    """A write failed for want of space (ENOSPC, a quota, or EFBIG: the file size limit)."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return isinstance(exc, duckdb.Error) and any(t in str(exc).lower() for t in _DISK_FULL_TEXT)


# an absolute path DuckDB quotes: "/x/y", also \"/x/y\" inside the JSON some of its errors carry
_QUOTED_PATH = re.compile(r"[\"'](/[^\"'\\]+)")


def named_paths(exc: BaseException) -> list[str]:
    """The files an error names: an OSError's, or those DuckDB quotes in its message."""
    if isinstance(exc, OSError):
        return [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    return _QUOTED_PATH.findall(str(exc))


def is_invalidated(exc: BaseException) -> bool:
    """DuckDB gave up on the database after a fatal error: nothing works until it is reopened."""
    return isinstance(exc, duckdb.FatalException) or "database has been invalidated" in str(exc)


def _keys_checked_apart(batch: list[_Task]) -> list[list[_Task]]:
    """The batch cut so that no append with required keys follows a write function in one
    commit: that function may delete the keys (a flow deleted just before a run of it is
    stored), and the keys are looked up once per commit, before it. Rare: one part mostly."""
    parts: list[list[_Task]] = [[]]
    wrote = False
    for task in batch:
        if not isinstance(task.work, Append):
            wrote = True
        elif task.work.requires is not None and wrote:
            parts.append([])
            wrote = False
        parts[-1].append(task)
    return parts


def _merge(parts: list[Rows | pa.Table]) -> pa.Table:
    tables = [p for p in parts if isinstance(p, pa.Table)]
    lists = [p for p in parts if isinstance(p, Rows)]
    if lists:
        merged = {name: [v for p in lists for v in p.columns[name]] for name in lists[0].columns}
        tables.append(pa.table(merged, schema=lists[0].schema))
    if len(tables) == 1:
        return tables[0]
    if any(t.schema != tables[0].schema for t in tables):
        # the bulk path hands payloads as `arrow.json`, a single save as strings: one table of
        # the strings (DuckDB casts either into a JSON column); concat refused the mix, and the
        # group fell back to a commit per task
        tables = [t.cast(_storage_schema(t.schema)) for t in tables]
    return pa.concat_tables(tables)


def _storage_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [f.with_type(f.type.storage_type) if isinstance(f.type, pa.BaseExtensionType) else f for f in schema]
    )


def one_row(result: Connection) -> tuple[Any, ...] | None:
    """A result's first row, the result read to its end. DuckDB leaves a result `fetchone()`
    read unfinished until a fetch finds no more rows, and the connection's next relation query
    (`.sql()`) then fails: on a kept read cursor, the next request's metrics were a 500."""
    rows = result.fetchall()
    return rows[0] if rows else None


def in_snapshot(fn: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """A read of several queries that must agree: one read-only transaction on the cursor, so a
    write committing in between cannot make them describe different runs."""

    def read(c: Connection) -> T:
        c.execute("BEGIN TRANSACTION")
        try:
            return fn(c)
        finally:
            c.execute("ROLLBACK")

    return read


def _refuse_foreign(root: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Someone else's DuckDB file: a mistyped --db made read-only commands add flowhistory's
    tables (and a 64 MiB reserve file) to it. An empty file, or a store of any version, opens."""
    names = {
        r[0]
        for r in root.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL"
            " SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }
    if names and "schema_migrations" not in names:
        root.close()
        raise NotAStore(
            f"{path} is a DuckDB database but not a flowhistory store (it holds tables of its own, "
            "and flowhistory adds none to it): check --db or FLOWHISTORY_DB_PATH"
        )


def locked_here(path: str) -> bool:
    """Whether this process holds a POSIX lock on the file at `path`, as DuckDB holds one on its
    store. Such a file must not be opened here even to read a byte: closing any descriptor of a
    file drops every POSIX lock the process holds on it, and another process could then open
    the store beside the server. Read from /proc/locks (Linux); elsewhere: False."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as fh:
            entries = fh.read().splitlines()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pid = str(os.getpid())
    # "2: POSIX  ADVISORY  WRITE 15577 fe:00:8438323 0 EOF" (a waiter's line has "->" before it)
    return any(p[4:6] == [pid, key] for p in (e.split() for e in entries) if "->" not in p)


def sql_path(path: Path) -> str:
    """A path as an SQL string literal's text (quotes doubled)."""
    return str(path).replace("'", "''")


def copy_out(conn: Connection, target: Path, alias: str = "flowhistory_copy") -> dict[str, int]:
    """The whole database of `conn` into a new file at `target`, checked table by table (a
    backup, a rescued copy); nothing may write it meanwhile (the caller is the writer)."""
    main = conn.execute("SELECT current_database()").fetchall()[0][0]
    conn.execute(f"ATTACH '{sql_path(target)}' AS {alias}")
    try:
        return copy_database(conn, main, alias)
    finally:
        conn.execute(f"DETACH {alias}")


def open_alone(path: Path, then: str) -> Connection:
    """Open a store file no process may hold (offline restore, compaction) with its WAL folded
    in; StoreLocked, saying `then` (what to do), when a server holds it."""
    try:
        conn = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLocked(f"the store {path} is in use by another process: {then}") from exc
        raise cannot_open(path, exc) from exc
    conn.execute("CHECKPOINT")
    return conn


def cannot_open(path: Path, exc: BaseException) -> StoreUnopenable:
    """DuckDB's refusal to open `path` (a folder, not a DuckDB file, no file can be made there),
    in one line naming it: it reached the CLI as a traceback."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StoreUnopenable(f"cannot open the store at {path}: {reason}")


def prepare_connection(conn: Connection) -> None:
    """Settings every connection gets: UTC, and no Python variables read as tables."""
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET python_enable_replacements = false")


def _catalog(conn: Connection, database: str) -> tuple[dict[str, int], list[tuple[str, ...]]]:
    """Row counts per table, and the names of every view, index and sequence, of one database."""
    names = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary"
        " ORDER BY ALL",
        [database],
    ).fetchall()
    counts = {
        f"{schema}.{table}": int(
            conn.execute(f'SELECT count(*) FROM "{database}"."{schema}"."{table}"').fetchall()[0][0]
        )
        for schema, table in names
    }
    objects = conn.execute(
        "SELECT 'view', schema_name, view_name FROM duckdb_views() WHERE database_name = $1 AND NOT internal"
        " UNION ALL SELECT 'index', schema_name, index_name FROM duckdb_indexes() WHERE database_name = $1"
        " UNION ALL SELECT 'sequence', schema_name, sequence_name FROM duckdb_sequences() WHERE database_name = $1"
        " ORDER BY ALL",
        [database],
    ).fetchall()
    return counts, [tuple(r) for r in objects]


def copy_database(conn: Connection, source: str, target: str) -> dict[str, int]:
    """`COPY FROM DATABASE source TO target` (tables, constraints, indexes, views, sequences), then
    check both hold the same tables with the same row counts and the same other objects; answers
    the row count per table. Raises RuntimeError when they differ. Nothing may write `source`
    meanwhile (the caller is the writer, or the file is not open elsewhere)."""
    conn.execute(f'COPY FROM DATABASE "{source}" TO "{target}"')
    old, old_objects = _catalog(conn, source)
    new, new_objects = _catalog(conn, target)
    if old != new or old_objects != new_objects:
        wrong = sorted({*old, *new} - {t for t in old if old.get(t) == new.get(t)})
        missing = sorted(set(old_objects) ^ set(new_objects))
        raise RuntimeError(
            f"the copy of the store differs (tables {wrong}, objects {missing}); nothing was changed"
        )
    return old


def file_bytes(path: Path) -> int:
    """A store on disk: the file and its WAL."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + ".wal")) if p.exists())


class Store:
    """Owns one DuckDB file. `submit` queues a write; `read` runs a function on a cursor."""

    RESERVE_CHECK_S = 1.0  # a missing reserve: how often a commit looks for room to make it

    def __init__(
        self,
        path: str | Path,
        *,
        checkpoint_threshold: str | None = None,
        memory_limit: str | None = None,
        threads: int | None = None,
        read_only: bool = False,
        reserve_bytes: int = 0,
        ours_only: bool = False,
    ) -> None:
        """`read_only` opens the file for reading only (notebooks, while no server holds it):
        several such processes may share a file, and every write is refused. `reserve_bytes`
        is the room kept for deletes when the disk fills (see the module's docstring).
        `ours_only` (flowhistory's stores) refuses a DuckDB file with tables of its own and no
        flowhistory schema (NotAStore), before anything is written to it or beside it."""
        self.path = Path(path)
        self.read_only = read_only
        self.reserve_bytes = 0 if read_only or str(path) == ":memory:" else reserve_bytes
        self._full = False
        self._reserve_missing = False  # released or never made: made again when the disk allows
        self._reserve_checked = 0.0  # monotonic time of the last look for room for it
        self._writer_error: str | None = None  # why the writer cannot commit (readiness)
        self._unwritable = False  # the last write found the store's folder unwritable
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"checkpoint_threshold": NO_AUTO_CHECKPOINT}
        self.checkpoint_bytes = (
            int(TypeAdapter(ByteSize).validate_python(checkpoint_threshold))
            if checkpoint_threshold
            else _DEFAULT_CHECKPOINT_AT
        )
        self._checkpoint_owed = False  # a checkpoint was skipped for want of room
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        self._config = config
        new = str(path) != ":memory:" and not self.path.exists()
        try:
            self._root = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if new and self.path.is_file() and self.path.stat().st_size == 0:
                # a first start on a full disk left an empty file, which every later start
                # refused as "not a valid DuckDB database file" until removed by hand
                self.path.unlink()
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"the store {self.path} is in use by another process ({exc}). One process "
                    "owns a store: stop that server, or talk to it over its HTTP API."
                ) from exc
            if read_only and "does not exist" in str(exc):
                raise NotFound(f"there is no store at {self.path}") from exc
            raise cannot_open(self.path, exc) from exc
        if ours_only:
            _refuse_foreign(self._root, self.path)
        prepare_connection(self._root)
        self._lost: str | None = None  # why the file is not the one open any more (StoreLost)
        self._lost_detail = LOST_DETAIL.format(saved=_NOT_RESCUED)  # what a refused write is told
        self._unopened = False  # a reopen failed: tried again before a later commit
        self._reopen_tried = 0.0  # monotonic time of the last try
        self._note_file()
        self._cursor_lock = threading.Lock()
        self._cursors: list[Connection] = []
        self._local = threading.local()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        # the file swap: cursors of an older generation belong to a closed file; reads enter
        # and leave the gate, and the swap waits for those in flight and holds back new ones
        self._generation = 0
        self._gate = threading.Condition(threading.Lock())
        self._readers = 0
        self._streams = 0
        self._swapping = False
        self.stats = WriteStats()
        # called on the writer thread after each group commit: cheap, never raising
        self.commit_listeners: list[CommitListener] = []
        self._writer_conn = self._new_cursor()
        self._make_reserve()
        self._writer = threading.Thread(target=self._write_loop, name="flowhistory-writer", daemon=True)
        self._writer.start()

    # -- reads -------------------------------------------------------------------------------

    def _new_cursor(self) -> Connection:
        with self._cursor_lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            cur = self._root.cursor()
            self._cursors.append(cur)
        prepare_connection(cur)
        return cur

    def cursor(self) -> Connection:
        """This thread's read cursor; callers must drain every result they start."""
        if self._closed:
            raise StoreClosed("the store is closed")
        local = self._local
        cur = getattr(local, "cursor", None)
        if cur is None or local.generation != self._generation:
            cur = self._new_cursor()
            local.cursor = cur
            local.generation = self._generation
        return cur

    def read(self, fn: Callable[[Connection], T]) -> T:
        local = self._local
        if getattr(local, "inside", False):  # a read within a read: already counted
            return fn(self.cursor())
        generation = self._generation
        try:
            return self._read(fn)
        except duckdb.Error as exc:
            if self._unopened:  # its reopen failed: the writer tries again (at most once a second)
                self._queue.put(_RECOVER)
                raise StoreUnwritable(UNOPENED_DETAIL) from exc
            if not is_invalidated(exc) or self.read_only:
                raise
        # DuckDB invalidated the database (a fatal checkpoint just after a commit was
        # acknowledged): the writer reopens it from the file and WAL; a read waits for that and
        # runs once more on the reopened database instead of failing
        self._queue.put(_RECOVER)
        with self._gate:
            self._gate.wait_for(lambda: self._generation != generation and not self._swapping, timeout=10.0)
        try:
            return self._read(fn)
        except duckdb.Error as exc:  # the reopen failed (its folder read-only, say): in words
            if self._unopened:
                self._queue.put(_RECOVER)
                raise StoreUnwritable(UNOPENED_DETAIL) from exc
            raise

    def _read(self, fn: Callable[[Connection], T]) -> T:
        local = self._local
        gate = self._gate
        with gate:
            while self._swapping:
                gate.wait()
            self._readers += 1
        local.inside = True
        try:
            return fn(self.cursor())
        finally:
            local.inside = False
            with gate:
                self._readers -= 1
                if self._swapping and not self._readers:
                    gate.notify_all()

    @contextlib.contextmanager
    def stream(self) -> Iterator[Connection]:
        """A cursor of its own for a long read outside `read` (a download streamed to a client);
        closed at the end. While one is open the file swap does not run (it would close it)."""
        with self._gate:
            while self._swapping:
                self._gate.wait()
            self._streams += 1
        try:
            cur = self._new_cursor()
            try:
                yield cur
            finally:
                with contextlib.suppress(Exception):
                    cur.close()
        finally:
            with self._gate:
                self._streams -= 1

    # -- writes ------------------------------------------------------------------------------

    @overload
    def submit(
        self,
        work: Callable[[Connection], T],
        *,
        after_commit: AfterCommit | None = None,
        frees_space: bool = False,
    ) -> Future[T]: ...
    @overload
    def submit(
        self, work: Append, *, after_commit: AfterCommit | None = None, frees_space: bool = False
    ) -> Future[None]: ...
    def submit(
        self, work: WriteFn | Append, *, after_commit: AfterCommit | None = None, frees_space: bool = False
    ) -> Future[Any]:
        """Queue a write; the future resolves after its transaction committed. `frees_space`
        marks a delete: it still runs when the disk is full (StorageFull for the others)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        if self.read_only:
            raise StoreClosed("the store was opened read-only")
        task = _Task(work, after_commit=after_commit, frees_space=frees_space)
        self._queue.put(task)
        return task.future

    def queue_depth(self) -> int:
        """Writes waiting for the writer (approximate, as any queue size read from outside)."""
        return self._queue.qsize()

    # typed per call: a write answers what its function returns (an Append answers None)
    @overload
    def write(
        self,
        work: Callable[[Connection], T],
        *,
        after_commit: AfterCommit | None = None,
        frees_space: bool = False,
    ) -> T: ...
    @overload
    def write(
        self, work: Append, *, after_commit: AfterCommit | None = None, frees_space: bool = False
    ) -> None: ...
    def write(
        self, work: WriteFn | Append, *, after_commit: AfterCommit | None = None, frees_space: bool = False
    ) -> Any:
        return self.submit(work, after_commit=after_commit, frees_space=frees_space).result()

    def write_now(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` on the writer's connection at once, in its own transaction: only from an
        after-commit hook (the writer thread), for a follow-up write the caller's ack must wait
        for without queueing behind itself."""
        if threading.current_thread() is not self._writer:
            raise RuntimeError("write_now runs only on the writer thread (in an after-commit hook)")
        conn = self._writer_conn
        conn.execute("BEGIN TRANSACTION")
        try:
            result = fn(conn)
        except BaseException:
            with contextlib.suppress(Exception):  # the hook's caller cleans the connection
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _SHUTDOWN:
                return
            if first is _RECOVER:
                if self._unopened:
                    self._reopened_now()
                else:
                    self._recover_if_invalidated("a read found the database invalidated")
                continue
            if isinstance(first, _Rebuild | _Exclusive):
                self._run_alone(first)
                self._recover_if_invalidated("a file swap or exclusive task failed")
                continue
            batch: list[_Task] = [first]
            stop = False
            rebuild: _Rebuild | _Exclusive | None = None
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _SHUTDOWN:
                    stop = True
                    break
                if item is _RECOVER:
                    continue  # the checks after the commit see it
                if isinstance(item, _Rebuild | _Exclusive):  # writes queued after it wait for it
                    rebuild = item
                    break
                batch.append(item)
            self._commit(self._writer_conn, batch)
            self._recover_if_invalidated("after a commit")
            if rebuild is not None:
                self._run_alone(rebuild)
                self._recover_if_invalidated("a file swap or exclusive task failed")
            if stop:
                return

    # -- the file under the store -------------------------------------------------------------
    def _note_file(self) -> None:
        """The file the store has open, as the path names it now."""
        self._file: tuple[int, int] | None = None
        if not self.read_only and str(self.path) != ":memory:":
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                self._file = (st.st_dev, st.st_ino)

    def _file_changed(self) -> str | None:
        """Why the path no longer names the file the store has open (None: it does, or no way
        to tell). A store file deleted or truncated under the server went unseen: every write
        was acknowledged into a file no later start could open, and lost."""
        if self._file is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "was removed"
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != self._file:
            return "was replaced by another file"
        # a checkpoint may give trailing blocks back, so only a file shorter than DuckDB's
        # headers is surely cut (a truncate to 0 made the next start refuse the file)
        if st.st_size < _DUCKDB_HEADERS:
            return f"was truncated ({st.st_size} bytes)"
        return None

    def _lose(self, conn: Connection, why: str) -> None:
        """Refuse every write from now on (StoreLost; /ready says why), after copying what the
        open file holds, every acknowledged write, beside the path (`<store>.rescued-<time>`)."""
        self._lost = why
        self._writer_error = f"the store file {why} while the server ran"
        rescued = self.path.with_name(
            f"{self.path.name}.rescued-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        )
        try:
            copy_out(conn, rescued)
            saved = f"every write acknowledged before was copied to {rescued} (`flowhistory restore` it)"
            self._lost_detail = LOST_DETAIL.format(saved=_RESCUED.format(name=rescued.name))
        except Exception as exc:
            saved = f"copying what it held to {rescued} failed ({exc}); restore the latest backup"
            self._lost_detail = LOST_DETAIL.format(saved=_NOT_RESCUED)
        log.critical(
            "the store file %s %s while the server ran: writes are refused; %s", self.path, why, saved
        )

    def _fail(self, task: _Task, exc: BaseException) -> None:
        """Answer a write with an error (counted: refusals on a full disk too)."""
        if not task.future.done():
            self.stats.failed_tasks += 1
            if isinstance(exc, StorageFull):
                self.stats.refused_full += 1
            task.future.set_exception(exc)

    def _commit(
        self, conn: Connection, batch: list[_Task], *, retried: bool = False, in_reserve: bool = False
    ) -> None:
        """`in_reserve`: deletes retried in the room the reserve released (never looks for room
        again, so a second disk-full error refuses them instead of releasing anything)."""
        if self._lost is None and (why := self._file_changed()) is not None:
            self._lose(conn, why)
        if self._lost is not None:
            for task in batch:
                self._fail(task, StoreLost(self._lost_detail))
            return
        if self._unopened and not self._reopened_now():
            for task in batch:
                self._fail(task, StoreUnwritable(UNWRITABLE_DETAIL))
            return
        conn = self._writer_conn
        if self._full and not in_reserve and not self._space_back():
            for task in batch:
                if not task.frees_space:
                    self._fail(task, StorageFull(self._full_detail()))
            batch = [t for t in batch if t.frees_space]
            if not batch:
                return
        parts = _keys_checked_apart(batch)
        if len(parts) > 1:
            for part in parts:
                self._commit(self._writer_conn, part, retried=retried, in_reserve=in_reserve)
            return
        batch = self._without_missing_keys(conn, batch)
        if not batch:
            return
        started = time.perf_counter()
        rows: dict[str, int] = {}
        try:
            appends = [t.work for t in batch if isinstance(t.work, Append)]
            if len(appends) == len(batch) and len({n for a in appends for n in a.tables}) == 1:
                # one INSERT is its own transaction: no BEGIN/COMMIT calls, each of which
                # costs the writer GIL hand-overs while the event loop is busy
                self._insert(conn, appends, rows)
                results: list[Any] = [None] * len(batch)
            else:
                conn.execute("BEGIN TRANSACTION")
                results = self._apply(conn, batch, rows)
                conn.execute("COMMIT")
        except BaseException as exc:
            # whatever the task raised (a result it left open, a transaction), the writer's
            # connection is clean again before anything else runs on it
            self._clean_writer()
            if is_invalidated(exc):
                # invalidated before this commit began (nothing of it stored): reopen, try again;
                # a fatal error in the commit itself is not retried (it may be in the WAL)
                if "previous fatal error" in str(exc) and not retried and self._recover(str(exc)):
                    self._commit(self._writer_conn, batch, retried=True, in_reserve=in_reserve)
                    return
                failed = StorageFull(FULL_DETAIL) if self._store_disk_full(exc) else exc
                for task in batch:
                    self._fail(task, failed)
                return
            if self._store_disk_full(exc):
                self._disk_full(batch, exc)
                return
            if self._store_unwritable(exc):
                self._unwritable = True
                for task in batch:
                    self._fail(task, StoreUnwritable(UNWRITABLE_DETAIL))
                return
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            for task in batch:  # find the bad one: each alone, the good ones still commit
                self._commit(self._writer_conn, [task], in_reserve=in_reserve)
            return
        self._writer_error = None
        self._unwritable = False
        self._count(len(batch), rows, time.perf_counter() - started)
        hook_failed = False
        for task, result in zip(batch, results, strict=True):
            if task.after_commit is not None:
                try:
                    task.after_commit(result)
                except Exception:  # a hook must never stop the writer or lose the ack
                    log.exception("after-commit hook failed")
                    hook_failed = True
            if not task.future.done():
                task.future.set_result(result)
        if hook_failed:
            self._clean_writer()
        conn = self._writer_conn
        if self._full and any(t.frees_space for t in batch):
            self._freed(conn)
            return
        if self._checkpoint_owed or self._wal_bytes() >= self.checkpoint_bytes:
            self._checkpoint(conn, "at the WAL threshold")
        self._keep_reserve()

    # -- a full disk -------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """The last write found the disk full, and neither a delete nor the disk has freed room."""
        return self._full

    @property
    def unwritable(self) -> bool:
        """The last write found the store's folder unwritable (or it could not be reopened), and
        a file still cannot be made there: every write is refused meanwhile (readiness, metrics).
        Looked at again here, so an idle server does not say so after the folder is fixed."""
        if self._unopened:
            return True
        if not self._unwritable:
            return False
        try:  # never the store's own file: closing a descriptor of it would drop DuckDB's lock
            with tempfile.TemporaryFile(dir=self.path.parent):
                pass
        except OSError:
            return True
        self._unwritable = False
        return False

    def _reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    @property
    def has_reserve(self) -> bool:
        """The reserve is in place (always, without one configured)."""
        return not self.reserve_bytes or self._reserve_path().exists()

    def _make_reserve(self) -> bool:
        """Take `reserve_bytes` on the store's disk (again); False if the disk has no room."""
        if not self.reserve_bytes:
            return True
        reserve = self._reserve_path()
        try:
            with open(reserve, "ab") as f:
                if os.fstat(f.fileno()).st_size < self.reserve_bytes:
                    os.posix_fallocate(f.fileno(), 0, self.reserve_bytes)
            self._reserve_missing = False
            return True
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            self._reserve_missing = True
            log.error("cannot keep %d bytes in reserve beside the store: %s", self.reserve_bytes, exc)
            return False

    def _room_to_resume(self) -> int:
        """Free bytes that let writes resume (or a missing reserve be made): the reserve, and
        room for a checkpoint's margin beside it."""
        return self.reserve_bytes + max(_CHECKPOINT_MARGIN, 1 << 20)

    def _keep_reserve(self) -> None:
        """After a commit: a reserve that is missing (never made, or released) is made again
        once the disk has room for it (`_room_to_resume`); looked for at most once every
        RESERVE_CHECK_S."""
        if not self._reserve_missing or self._full:
            return
        now = time.monotonic()
        if now - self._reserve_checked < self.RESERVE_CHECK_S:
            return
        self._reserve_checked = now
        st = os.statvfs(self.path.parent)
        if st.f_bavail * st.f_frsize >= self._room_to_resume() and self._make_reserve():
            log.warning("the reserve beside the store is made again: the disk has room")

    def _reopened_now(self) -> bool:
        """A store DuckDB gave up on and that could not be reopened (its folder read-only, say)
        is tried again, at most once every RESERVE_CHECK_S: it stayed dead until a restart."""
        now = time.monotonic()
        if now - self._reopen_tried < self.RESERVE_CHECK_S:
            return False
        self._reopen_tried = now
        return self._recover("trying again")

    def _store_unwritable(self, exc: BaseException) -> bool:
        """The store's own files cannot be written (a read-only file system, no permission)."""
        text = str(exc).lower()
        if not isinstance(exc, duckdb.Error) or not any(t in text for t in _UNWRITABLE_TEXT):
            return False
        return self._names_store(exc)

    def _names_store(self, exc: BaseException) -> bool:
        """The error names one of the store's own files (file, WAL, temporary files), or none."""
        paths = named_paths(exc)
        mine = os.path.abspath(self.path)
        return not paths or any(os.path.abspath(p).startswith(mine) for p in paths)

    def _store_disk_full(self, exc: BaseException) -> bool:
        """A write failed for want of room on the store's own disk. DuckDB writes the store (its
        file, WAL, temporary files): an OSError is a task's own file elsewhere, and so is a
        DuckDB error naming only files that are not the store's (an archive or backup folder on
        a disk of its own, written from within a task). That is the task's failure, never the
        store's full mode."""
        return isinstance(exc, duckdb.Error) and is_disk_full(exc) and self._names_store(exc)

    def _clean_writer(self) -> None:
        """After a failure: no transaction left open and no result left unread on the writer's
        connection (a task's exception can keep a streaming result of it alive, and then every
        later statement fails with "connection has an open result"). If a rollback does not
        make it usable, the writer takes a fresh connection (closing the old one rolls back)."""
        conn = self._writer_conn
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        try:
            conn.execute("BEGIN TRANSACTION")
            conn.execute("ROLLBACK")
            return
        except Exception as exc:
            if is_invalidated(exc):
                return  # the writer's check after this step reopens the database
            why = exc
        try:
            with self._cursor_lock:
                with contextlib.suppress(Exception):
                    conn.close()
                with contextlib.suppress(ValueError):
                    self._cursors.remove(conn)
                fresh = self._root.cursor()
                self._cursors.append(fresh)
                self._writer_conn = fresh
            prepare_connection(fresh)
            fresh.execute("BEGIN TRANSACTION")
            fresh.execute("ROLLBACK")
        except Exception as exc:
            self._writer_error = f"its connection is unusable: {type(exc).__name__}"
            log.exception("the writer's connection is unusable and could not be replaced (%s)", why)
            return
        log.warning("a failed write left the writer's connection unusable (%s); it has a fresh one", why)

    def _disk_full(self, batch: list[_Task], exc: BaseException) -> None:
        """A commit failed for want of space: release the reserve, retry the deletes in its room
        (once), refuse the rest with StorageFull (nothing of them was stored)."""
        first = not self._full
        if first:
            self._full = True
            self._reserve_path().unlink(missing_ok=True)
            self._reserve_missing = bool(self.reserve_bytes)
            log.error(
                "the store's disk is full (%s): reserve released; writes are refused until runs "
                "are deleted or the disk has room again",
                exc,
            )
        deletes = [t for t in batch if t.frees_space]
        for task in batch:
            if not task.frees_space:
                self._fail(task, StorageFull(FULL_DETAIL))
        if first and deletes:
            for task in deletes:
                self._commit(self._writer_conn, [task], in_reserve=True)
            return
        for task in deletes:
            self._fail(
                task,
                StorageFull(
                    "the store's disk is full and its reserve is used up: the delete was not "
                    "stored. Free space on the disk itself (the store then resumes on its own)"
                ),
            )

    def _freed(self, conn: Connection) -> None:
        """A delete committed while full: fold the WAL into the file so its rows' blocks are free
        for new rows. Writes resume once that checkpoint has run and the reserve could be made
        again: with less room a write would fill the disk at once, and the next full disk would
        find no room for deletes. Until then writes stay refused and deletes still run; the
        disk's own room (the reserve and 4 MiB beside it) ends full mode too."""
        if not self._checkpoint(conn, "after a delete on a full disk"):
            log.error(
                "a delete committed on the full disk, but the checkpoint that frees its room did "
                "not run: writes stay refused until the disk has room"
            )
            return
        if not self._make_reserve():
            log.error(
                "a delete committed on the full disk, but there is no room to make the reserve "
                "again: writes stay refused until the disk has room (deletes still run)"
            )
            return
        self._full = False
        log.warning("the store takes writes again: a delete freed room")

    def _wal_bytes(self) -> int:
        if str(self.path) == ":memory:":
            return 0
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def _full_detail(self) -> str:
        """Why a write is refused in full mode: deletes help, unless the WAL holds what they would
        free and there is no room to fold it (then only room on the disk itself does)."""
        if not self._checkpoint_owed:
            return FULL_DETAIL
        free, need = self.checkpoint_room()
        if free >= need:
            return FULL_DETAIL
        return (
            "the store's disk is full: this write was not stored. Reads still work. Deleting runs "
            "cannot free room now: the write-ahead log holds them until a checkpoint folds it into "
            f"the store file, which needs about {need >> 20} MiB free on the disk ({free >> 20} MiB "
            "are); free room on the disk itself, and writes resume without a restart"
        )

    def checkpoint_room(self) -> tuple[int, int]:
        """(free bytes on the store's disk, bytes a CHECKPOINT may need: twice the WAL plus a margin)."""
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize, 2 * self._wal_bytes() + _CHECKPOINT_MARGIN

    def _checkpoint(self, conn: Connection, why: str) -> bool:
        """CHECKPOINT only with room for it on the disk (twice the WAL plus a margin): one that
        runs out of space makes DuckDB invalidate the database. Skipped or failed: logged, owed
        (tried again after later commits), and the WAL keeps every commit meanwhile."""
        if self.read_only or str(self.path) == ":memory:":
            return True
        wal = self._wal_bytes()
        if not wal:
            self._checkpoint_owed = False
            return True
        free, need = self.checkpoint_room()
        if free < need:
            if not self._checkpoint_owed:
                log.error(
                    "checkpoint %s skipped: the disk has %d bytes free, it may need %d (the WAL keeps "
                    "every commit; it runs once there is room)",
                    why,
                    free,
                    need,
                )
            self._checkpoint_owed = True
            return False
        try:
            conn.execute("CHECKPOINT")
        except Exception as exc:  # tried again after the next commit
            # another connection's write transaction open (a compaction's): routine under load
            level = logging.WARNING if "other write transactions" in str(exc) else logging.ERROR
            log.log(level, "checkpoint %s failed (the WAL keeps every commit; tried again): %s", why, exc)
            self._checkpoint_owed = True
            return False
        if self._checkpoint_owed:
            log.warning("checkpoint %s done: the one skipped earlier has run", why)
        self._checkpoint_owed = False
        return True

    def _recover_if_invalidated(self, why: str) -> None:
        """The writer's check after each step: reopen if DuckDB invalidated the database."""
        try:
            self._writer_conn.execute("SELECT 1").fetchall()
        except Exception as exc:
            if is_invalidated(exc):
                self._recover(f"{why}: {exc}")

    def _recover(self, why: str) -> bool:
        """Reopen a database DuckDB invalidated (a fatal error, e.g. a checkpoint without room):
        the WAL holds every commit and replays; readers get new cursors, as after a file swap."""
        with self._gate:
            self._swapping = True
            # reads in flight fail anyway on the dead database; give them a moment to leave
            self._gate.wait_for(lambda: not self._readers, timeout=5.0)
        try:
            with self._cursor_lock:
                for cur in self._cursors:
                    with contextlib.suppress(Exception):
                        cur.close()
                self._cursors.clear()
                with contextlib.suppress(Exception):
                    self._root.close()
                self._generation += 1
                self._reopen()
            self._writer_conn.execute("SELECT 1").fetchall()
        except Exception:
            self._writer_error = "the database was invalidated and could not be reopened"
            self._unopened = True
            log.exception("the store was invalidated by DuckDB (%s) and could not be reopened", why)
            return False
        finally:
            with self._gate:
                self._swapping = False
                self._gate.notify_all()
        self._checkpoint_owed = True
        self._writer_error = None
        self._unopened = False
        log.error("the store was invalidated by DuckDB (%s); reopened from its file and WAL", why)
        return True

    def _space_back(self) -> bool:
        """Full mode ends once the reserve can be made again with room to spare (what a start
        asks: twice the reserve kept a 120 MiB disk with 117 MiB free refusing every write until
        a restart, which then took writes with 51 MiB free)."""
        st = os.statvfs(self.path.parent)
        if st.f_bavail * st.f_frsize < self._room_to_resume():
            return False
        if not self._make_reserve():
            return False
        self._full = False
        log.warning("the store takes writes again: the disk has room")
        return True

    def _count(self, tasks: int, rows: dict[str, int], seconds: float) -> None:
        stats = self.stats
        stats.commits += 1
        stats.committed_tasks += tasks
        stats.last_batch = tasks
        stats.commit_seconds += seconds
        for name, n in rows.items():
            stats.rows[name] = stats.rows.get(name, 0) + n
        for listener in self.commit_listeners:
            try:
                listener(tasks, seconds)
            except Exception:  # an observer must never stop the writer or lose the ack
                log.exception("commit listener failed")

    def _apply(self, conn: Connection, batch: list[_Task], rows: dict[str, int]) -> list[Any]:
        results: list[Any] = []
        pending: list[Append] = []
        for task in batch:
            if isinstance(task.work, Append):
                pending.append(task.work)
                results.append(None)
                continue
            self._insert(conn, pending, rows)
            pending = []
            results.append(task.work(conn))
        self._insert(conn, pending, rows)
        return results

    def _without_missing_keys(self, conn: Connection, batch: list[_Task]) -> list[_Task]:
        """Fail the appends whose required keys are gone (MissingKeys); the rest go on. Nothing
        can delete a key between this look and the insert: deletes are writes, on this thread,
        and none comes before such an append in one commit (`_keys_checked_apart`)."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for task in batch:
            if isinstance(task.work, Append) and task.work.requires is not None:
                wanted.setdefault((task.work.requires.table, task.work.requires.column), set()).update(
                    task.work.requires.keys
                )
        if not wanted:
            return batch
        gone: dict[tuple[str, str], set[str]] = {}
        try:
            for (table, column), keys in wanted.items():
                found = conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} IN (SELECT unnest(?::VARCHAR[]))",
                    [sorted(keys)],
                ).fetchall()
                gone[(table, column)] = keys - {k for (k,) in found}
        except BaseException:
            self._clean_writer()
            return batch  # the insert meets the same trouble and says so
        kept = []
        for task in batch:
            need = task.work.requires if isinstance(task.work, Append) else None
            missing = need.keys & gone[(need.table, need.column)] if need is not None else frozenset()
            if missing:
                self._fail(task, MissingKeys(frozenset(missing)))
            else:
                kept.append(task)
        return kept

    @staticmethod
    def _insert(conn: Connection, appends: list[Append], counted: dict[str, int]) -> None:
        """Append the rows; `counted` gets the rows per table (kept only if the commit succeeds)."""
        if not appends:
            return
        names: list[str] = []
        for a in appends:
            names.extend(n for n in a.tables if n not in names)
        for name in names:
            rows = _merge([a.tables[name] for a in appends if name in a.tables])
            if rows.num_rows:
                # a relation inserts by position, ~25 % cheaper than register + INSERT BY NAME;
                # the schemas are checked against the tables' column order (tests/analytics)
                conn.from_arrow(rows).insert_into(name)
                counted[name] = counted.get(name, 0) + rows.num_rows

    # -- the file swap -----------------------------------------------------------------------

    def rebuild_file(self, *, drain_s: float = 10.0) -> Rebuilt:
        """Copy the store into a fresh file and swap it in, while the store stays open.

        Runs on the writer (writes queued meanwhile wait, then commit to the new file). Readers
        run on during the copy; the swap waits up to `drain_s` for the reads in flight, holds new
        ones back for the moment it takes to close, rename and reopen, and they continue on new
        cursors. Any failure before the rename leaves the old file in use, untouched, and
        removes the copy; StoreBusy when a stream is open or reads did not drain in time.
        """
        if self.read_only or str(self.path) == ":memory:":
            raise StoreClosed("only a store file opened for writing can be rebuilt")
        if threading.current_thread() is self._writer:
            raise RuntimeError("rebuild_file cannot run inside a write (it needs the writer)")
        if self._closed:
            raise StoreClosed("the store is closed")
        task = _Rebuild(drain_s)
        self._queue.put(task)
        return task.future.result()

    def on_writer(self, fn: WriteFn) -> Any:
        """Run `fn` on the writer's connection between commits, outside any transaction (it may
        ATTACH, COPY FROM DATABASE, DETACH): no write interleaves, so what it reads is one
        consistent state of the store; writes queued meanwhile wait and then commit."""
        if self.read_only:
            raise StoreClosed("the store was opened read-only")
        if threading.current_thread() is self._writer:
            raise RuntimeError("on_writer cannot run inside a write (it needs the writer)")
        if self._closed:
            raise StoreClosed("the store is closed")
        task = _Exclusive(fn)
        self._queue.put(task)
        return task.future.result()

    def _run_alone(self, task: _Rebuild | _Exclusive) -> None:
        try:
            if isinstance(task, _Rebuild):
                task.future.set_result(self._rebuild(task.drain_s))
            else:
                task.future.set_result(task.fn(self._writer_conn))
        except BaseException as exc:
            task.future.set_exception(exc)
            self._clean_writer()

    def _rebuild(self, drain_s: float) -> Rebuilt:
        started = time.monotonic()
        fresh = self.path.with_name(self.path.name + ".compacting")
        wal = self.path.with_name(self.path.name + ".wal")
        garbage = (fresh, fresh.with_name(fresh.name + ".wal"))
        for leftover in garbage:  # a crash before an earlier swap's rename
            leftover.unlink(missing_ok=True)
        before = file_bytes(self.path)
        conn = self._writer_conn
        attached = False
        try:
            main = conn.execute("SELECT current_database()").fetchall()[0][0]
            conn.execute(f"ATTACH '{sql_path(fresh)}' AS flowhistory_fresh")
            attached = True
            tables = copy_database(conn, main, "flowhistory_fresh")
            conn.execute("DETACH flowhistory_fresh")
            attached = False
            with open(fresh, "rb") as f:
                os.fsync(f.fileno())
            self._pause_readers(drain_s)
            paused = time.monotonic()
        except BaseException:
            if attached:
                with contextlib.suppress(Exception):
                    conn.execute("DETACH flowhistory_fresh")
            for leftover in garbage:
                leftover.unlink(missing_ok=True)
            raise
        try:
            self._swap(fresh, wal)
        finally:
            with self._gate:
                self._swapping = False
                self._gate.notify_all()
            paused = time.monotonic() - paused
        log.info("store file swapped for a fresh copy; reads held back %.3f s", paused)
        return Rebuilt(
            tables, before, file_bytes(self.path), round(time.monotonic() - started, 3), round(paused, 3)
        )

    def _pause_readers(self, drain_s: float) -> None:
        """Hold back new reads and wait for those in flight; StoreBusy if they do not leave."""
        with self._gate:
            if self._streams:
                raise StoreBusy(
                    f"{self._streams} stream(s) read the store; the file swap waits for a quiet moment"
                )
            self._swapping = True
            if not self._gate.wait_for(lambda: not self._readers, timeout=drain_s):
                self._swapping = False
                self._gate.notify_all()
                raise StoreBusy(
                    f"reads still running after {drain_s}s; the file swap waits for a quiet moment"
                )

    def _swap(self, fresh: Path, wal: Path) -> None:
        """Readers paused, writer here: fold the WAL in, close the old file, rename, reopen."""
        try:
            # the copy holds it all; the old WAL must go
            if not self._checkpoint(self._writer_conn, "before the file swap"):
                raise RuntimeError("the checkpoint before the file swap did not run; nothing was changed")
            # attached databases belong to the instance: if a reopen still sees this one, a
            # connection we do not know of keeps the old file open, and the swap must not go on
            self._root.execute(f"ATTACH ':memory:' AS {_PROBE}")
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
        with self._cursor_lock:
            for cur in self._cursors:
                with contextlib.suppress(Exception):
                    cur.close()
            self._cursors.clear()
            self._root.close()
            self._generation += 1
            try:
                probe = duckdb.connect(str(self.path), config=self._config)
                try:
                    held = probe.execute(
                        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [_PROBE]
                    ).fetchall()[0][0]
                    if held:
                        probe.execute(f"DETACH {_PROBE}")
                finally:
                    probe.close()
                if held:
                    raise StoreBusy(
                        "a connection outside the store still holds the file; the swap was not done"
                    )
                if wal.exists() and wal.stat().st_size:  # never pair the new file with old WAL
                    raise RuntimeError(f"{wal} survived the checkpoint; the file swap was not done")
                wal.unlink(missing_ok=True)
                os.replace(fresh, self.path)
                with contextlib.suppress(OSError):  # make the rename itself durable
                    fd = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except BaseException:
                fresh.unlink(missing_ok=True)
                self._reopen()
                raise
            self._reopen()

    def _reopen(self) -> None:
        """Root and writer connection on the file at `path`, with the store's config; called with
        the cursor lock held."""
        self._root = duckdb.connect(str(self.path), config=self._config)
        prepare_connection(self._root)
        self._note_file()
        writer = self._root.cursor()
        prepare_connection(writer)
        self._cursors.append(writer)
        self._writer_conn = writer

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def writer_alive(self) -> bool:
        """The writer thread runs: writes are taken and committed (readiness, /ready)."""
        return self._writer.is_alive()

    @property
    def writer_state(self) -> str:
        """For readiness: "alive" (takes and commits writes), "stopped" (its thread ended), or
        "cannot commit (why)" (its connection is unusable or the database could not be
        reopened). A full disk is not in it: writes are refused then, but reads and deletes work."""
        if not self._writer.is_alive():
            return "stopped"
        if self._writer_error:
            return f"cannot commit ({self._writer_error})"
        if self.unwritable:
            return "cannot commit (the store's folder cannot be written: a read-only file system, or no permission)"
        return "alive"

    def close(self) -> None:
        """Finish queued writes, then close every connection; safe to call twice."""
        with self._cursor_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_SHUTDOWN)
        self._writer.join(timeout=30)
        while True:  # a write queued while closing is refused, never left hanging
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Task | _Rebuild | _Exclusive) and not item.future.done():
                item.future.set_exception(StoreClosed("the store is closed"))
        with self._cursor_lock:
            _close_busy(self._cursors)
            self._cursors.clear()
            # fold the WAL into the file, so the next start replays nothing; without room (or
            # after a failure) DuckDB must not try again on its own when it closes
            if self._lost is not None or not self._checkpoint(self._root, "at close"):
                with contextlib.suppress(Exception):
                    self._root.execute("PRAGMA disable_checkpoint_on_shutdown")
            self._root.close()
            if self._lost is not None:  # the dead file's WAL: never replayed onto a new or restored store
                wal = self.path.with_name(self.path.name + ".wal")
                with contextlib.suppress(OSError):
                    wal.rename(wal.with_name(f"{wal.name}.of-the-lost-file-{time.time_ns()}"))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
