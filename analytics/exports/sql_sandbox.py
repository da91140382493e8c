"""Ad-hoc SQL over the Parquet export, in a throwaway DuckDB that can read only the export.

Every query gets a FRESH in-memory connection (nothing one query does is seen by the next)
with views `executions`, `execution_nodes`, `flows` and `annotations` over the export folder
(empty, with the export's declared columns, while a table has no file yet; `annotations` of
an export written before they were exported fails when read, saying to run a cycle). Then it is
locked down, in this order because DuckDB needs it: `allowed_directories` = the export's real
path (it must be set while external access is still on), `enable_external_access = false`, no
extension autoload/autoinstall, no community extensions, no Python replacement scans, no
spilling to a temp folder, a memory limit and threads, and last `lock_configuration = true` so
the query cannot undo any of it (SET, RESET, PRAGMA, USE all fail).

Settings alone do not make it read-only: `allowed_directories` also allows WRITING there (COPY
TO, EXPORT DATABASE would overwrite export files). So the SQL is parsed by DuckDB first and
must be exactly one statement of type SELECT (which covers WITH, FROM-first, VALUES, DESCRIBE,
SUMMARIZE, SHOW); everything else (COPY, EXPORT, ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL,
CREATE, EXPLAIN, which may ANALYZE a COPY) is refused before it runs. Symlinks in the export
that point outside it are refused before the views are made (DuckDB refuses to follow them too).

Runaway queries: a timer calls `conn.interrupt()` at the deadline. Row limit: the query is
wrapped in LIMIT limit+1 and streamed as record batches, so no more than limit+1 rows are ever
materialised and truncation is known exactly.

All of that runs in a worker process (sql_worker.py), never in the caller's: `run_sql`,
`sandbox` and `query_reader` send the query to a pooled worker capped in memory and time and
get Arrow IPC back; `serve_in_worker` is the worker's end, over the `local_*` functions here.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from analytics.core.batch_formats import JSON_LINE, Format, encode
from analytics.core.config import Settings
from analytics.core.errors import InvalidInput
from analytics.exports import layout
from analytics.exports.sql_values import json_lines_batch
from analytics.exports.sql_worker import (
    KILL_GRACE_S,
    Header,
    Send,
    SqlAnswerTooLarge,
    SqlLimitExceeded,
    SqlOutOfMemory,
    SqlRefused,
    SqlTimedOut,
    WorkerPool,
    default_workers,
    pool_for,
    size_text,
    timed_out,
)

# table name -> glob under the export root (date=* keeps anything else out of the views)
TABLES: dict[str, str] = {
    t.name: f"{t.name}/date=*/*.parquet" if t.partitioned else f"{t.name}/*.parquet" for t in layout.TABLES
}
BATCH_ROWS = 10_000
HANDLER = "analytics.exports.sql_sandbox:serve_in_worker"
__all__ = ["SqlAnswerTooLarge", "SqlLimitExceeded", "SqlOutOfMemory", "SqlRefused", "SqlTimedOut"]


@dataclass(frozen=True, slots=True)
class SqlColumn:
    name: str
    type: str  # DuckDB's type name, e.g. VARCHAR, TIMESTAMP, BIGINT[]


@dataclass(frozen=True, slots=True)
class SqlResult:
    columns: list[SqlColumn]
    table: pa.Table  # at most `limit` rows
    truncated: bool  # the query had more rows than `limit`
    elapsed_ms: float

    @property
    def row_count(self) -> int:
        return self.table.num_rows


@dataclass(frozen=True, slots=True)
class Limits:
    memory_limit: str = "512MB"  # DuckDB's own, inside the worker
    threads: int = 1
    worker_memory: int = 2 * 1024**3  # the worker's address space (RLIMIT_AS), in bytes
    workers: int = field(default_factory=default_workers)
    answer_bytes: int = 64 * 1024**2  # the most an answer (`run_sql`'s rows, as Arrow) may hold


def export_root(settings: Settings) -> Path:
    """The local export folder `export_url` names (default data/exports); an export on S3 is
    refused: the sandbox reads local files only (DuckDB's httpfs cannot be installed here)."""
    url = settings.export_url or str(settings.data_dir / "exports")
    parsed = urlparse(url)
    if parsed.scheme not in ("", "file"):
        raise SqlRefused(
            f"ad-hoc SQL reads a local export folder; the export is at {url}: "
            "read it with an engine that speaks S3 (docs/sql-and-engines.md)"
        )
    return Path(parsed.path if parsed.scheme == "file" else url)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        memory_limit=settings.sql_memory_limit,
        threads=settings.sql_threads,
        worker_memory=int(settings.sql_worker_memory),
        workers=settings.sql_workers or default_workers(),
        answer_bytes=int(settings.sql_max_answer_bytes),
    )


def _check_tree(root: Path) -> None:
    """Refuse an export holding a symlink that leaves it: DuckDB would refuse the whole scan
    with a less helpful message, and a future DuckDB might follow it."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            if path.is_symlink():
                try:
                    target = Path(os.path.realpath(path))
                except OSError as exc:  # a link that cannot be followed (/proc's): it leaves too
                    raise SqlRefused(
                        f"the export holds a symlink that cannot be followed: {path} ({exc})"
                    ) from exc
                if not target.is_relative_to(root):
                    raise SqlRefused(f"the export holds a symlink leaving it: {path} -> {target}")


def _statement(conn: duckdb.DuckDBPyConnection, sql: str) -> str:
    """DuckDB's own parse: exactly one SELECT-type statement, or a refusal naming what it is."""
    try:
        statements = conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRefused(str(exc)) from exc
    if len(statements) != 1:
        raise SqlRefused(f"give exactly one statement (got {len(statements)})")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise SqlRefused(f"only SELECT queries may run here; this is a {name} statement")
    return statements[0].query.strip().rstrip(";")


def _lock_down(conn: duckdb.DuckDBPyConnection, root: Path, limits: Limits) -> None:
    quoted = str(root).replace("'", "''")
    for statement in (
        "SET enable_progress_bar = false",
        "SET temp_directory = ''",  # nothing spilled to disk: the memory limit is the limit
        f"SET allowed_directories = ['{quoted}/']",  # these two before external access goes off
        "SET enable_external_access = false",
        "SET autoload_known_extensions = false",
        "SET autoinstall_known_extensions = false",
        "SET allow_community_extensions = false",
        "SET allow_persistent_secrets = false",
        "SET python_enable_replacements = false",
        "SET python_scan_all_frames = false",
        "SET memory_limit = '{}'".format(limits.memory_limit.replace("'", "''")),
        f"SET threads = {int(limits.threads)}",
        "SET lock_configuration = true",
    ):
        conn.execute(statement)


def _view(root: Path, table: layout.Table) -> str:
    """The view of `table` over its files; with no file yet (an empty or unfinished export) an
    empty view with the columns the export declares (layout.py, written to `_schema.json`), so a
    query answers zero rows instead of 'Table ... does not exist'; but a table the export
    should hold and does not (`annotations` in an export older than them) fails when read."""
    pattern = TABLES[table.name]
    if any(root.glob(pattern)):
        path = str(root / pattern).replace("'", "''")
        hive = ", hive_partitioning = true, hive_types = {'date': DATE}" if table.partitioned else ""
        return f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet('{path}', union_by_name = true{hive})"
    missing = layout.absent_table_error(root, table)
    if missing is not None:
        # an export written before the table existed: reading it fails, saying so, rather than
        # answering no rows (every column depends on error(), so no query can skip it)
        fail = "error('{}')".format(missing.replace("'", "''"))
        columns = [f"CAST(x AS {c.type}) AS {c.name}" for c in table.columns]
        return f"CREATE VIEW {table.name} AS SELECT {', '.join(columns)} FROM (SELECT {fail} AS x) WHERE x IS NULL"
    columns = [f"CAST(NULL AS {c.type}) AS {c.name}" for c in table.columns]
    if table.partitioned:
        columns.append("CAST(NULL AS DATE) AS date")  # the hive column readers get from the path
    return f"CREATE VIEW {table.name} AS SELECT {', '.join(columns)} WHERE false"


@contextmanager
def local_sandbox(root: Path, limits: Limits | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh, locked-down connection with the export's views, in this process; closed on exit."""
    limits = limits or Limits()
    if not root.is_dir():
        raise SqlRefused(f"there is no export at {root} yet: run `flowhistory export run` first")
    root = Path(os.path.realpath(root))
    _check_tree(root)
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("SET TimeZone = 'UTC'")
        for table in layout.TABLES:
            conn.execute(_view(root, table))
        _lock_down(conn, root, limits)
        yield conn
    finally:
        conn.close()


@contextmanager
def _deadline(conn: duckdb.DuckDBPyConnection, timeout_s: float) -> Iterator[threading.Event]:
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        conn.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


_MISSING_TABLE = re.compile(r"Table with name .+ does not exist")
_DID_YOU_MEAN = re.compile(r'\s*Did you mean "(?P<name>[^"]+)"\?')


def _explained(conn: duckdb.DuckDBPyConnection, exc: Exception) -> SqlRefused:
    """DuckDB's reason, but a missing table is answered with the export's tables: DuckDB
    suggests the nearest name in its whole catalog ("Did you mean pg_indexes?")."""
    message = str(exc)
    if not _MISSING_TABLE.search(message):
        return SqlRefused(message)
    try:
        views = {
            r[0] for r in conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
    except duckdb.Error:
        views = set(TABLES)
    tables = [t for t in TABLES if t in views] + sorted(views - TABLES.keys())
    hint = _DID_YOU_MEAN.search(message)
    if hint and hint["name"] not in tables:
        message = message[: hint.start()] + message[hint.end() :]
    known = f"the export's tables: {', '.join(tables)}" if tables else "the export has no tables yet"
    return SqlRefused(f"{message}\n({known})")


def _out_of_memory(exc: Exception, limits: Limits) -> SqlOutOfMemory:
    """DuckDB's reason (its first line: the rest suggests settings the sandbox locks) and the caps."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SqlOutOfMemory(
        f"the query needed more memory than it may use and was stopped ({reason}); the limits are "
        f"DuckDB's memory_limit {limits.memory_limit} (FLOWHISTORY_SQL_MEMORY_LIMIT) within a worker of "
        f"{size_text(limits.worker_memory)} (FLOWHISTORY_SQL_WORKER_MEMORY)"
    )


# the last: the worker's address space (RLIMIT_AS) is used up, so no thread stack fits (DuckDB
# or pyarrow starting a thread for the answer); seen once in CI in place of DuckDB's own error
_OOM_TEXT = (
    "Out of Memory Error",
    "std::bad_alloc",
    "failed to allocate",
    "Cannot allocate memory",
    "can't start new thread",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Every form running out of memory takes: DuckDB's OutOfMemoryException, Python's (and
    pyarrow's) MemoryError, and DuckDB's error crossing Arrow's C stream, which pyarrow raises
    as an OSError or ArrowException ("Out of Memory Error: ArrowBuffer: failed to allocate ..."),
    or a thread that cannot start for want of address space."""
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError):
        return True
    if isinstance(exc, duckdb.Error):
        return str(exc).startswith(_OOM_TEXT[0])
    return isinstance(exc, OSError | pa.ArrowException | RuntimeError) and any(
        t in str(exc) for t in _OOM_TEXT
    )


def _refusal(
    conn: duckdb.DuckDBPyConnection, exc: Exception, fired: threading.Event, timeout_s: float, limits: Limits
) -> SqlRefused | SqlLimitExceeded:
    if fired.is_set() or isinstance(exc, duckdb.InterruptException):
        return timed_out(timeout_s)
    if is_out_of_memory(exc):
        return _out_of_memory(exc, limits)
    return _explained(conn, exc)


# What the query's columns become before they leave DuckDB, by where they go (a column is cast to
# VARCHAR, i.e. DuckDB's own text, when its type or a type nested in it is named here):
# - everywhere: types Arrow carries wrongly or as DuckDB's internal bytes: UHUGEINT (above 2^127 it
#   wraps negative in Arrow's decimal128), TIMETZ (the offset is lost), BIT and BIGNUM (bytes);
# - CSV: every type pyarrow's CSV writer refuses (nested, unions, intervals, non-UTF-8 blobs) or
#   writes as "<value out of range>" (dates, timestamps, times past Python's range);
# - CSV and Parquet: ENUMs (Arrow dictionaries, which the batch-by-batch stream cannot carry);
# - Parquet: the types pyarrow's Parquet writer refuses (intervals, unions); and a TIMESTAMP_S
#   becomes a TIMESTAMP (Parquet has no seconds: 'infinity' overflowed the writer's cast to ms).
Target = Literal["arrow", "csv", "parquet"]
_TEXT_ALWAYS = frozenset({"uhugeint", "time with time zone", "bit", "bignum", "varint"})
_AS_TEXT: dict[str, frozenset[str]] = {
    "arrow": _TEXT_ALWAYS,
    "parquet": _TEXT_ALWAYS | {"interval", "union", "enum"},
    "csv": _TEXT_ALWAYS
    | {"enum", "interval", "union", "list", "array", "struct", "map", "blob", "date", "time"}
    | {"timestamp", "timestamp with time zone", "timestamp_s", "timestamp_ms", "timestamp_ns"},
}
_NESTED = frozenset({"list", "array", "struct", "map", "union"})


def _type_ids(t: DuckDBPyType) -> set[str]:
    ids = {str(t.id)}
    if ids & _NESTED:
        for _, child in t.children:
            if isinstance(child, DuckDBPyType):
                ids |= _type_ids(child)
    return ids


def _cast_to(t: DuckDBPyType, target: Target) -> str | None:
    ids = _type_ids(t)
    if ids & _AS_TEXT[target] or (
        target == "parquet" and "timestamp_s" in ids and str(t.id) != "timestamp_s"
    ):
        return "VARCHAR"
    if target == "parquet" and str(t.id) == "timestamp_s":
        return "TIMESTAMP"
    return None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unique(names: list[str]) -> list[str]:
    """Repeated names made unique as DuckDB's to_json does (a, a_1): a Parquet file needs it."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        unique, n = name, 0
        while unique.lower() in seen:
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique.lower())
        out.append(unique)
    return out


def _rendered(rel: duckdb.DuckDBPyRelation, target: Target) -> duckdb.DuckDBPyRelation:
    """`rel` with the columns `target` cannot carry cast (by position: names may repeat)."""
    casts = [_cast_to(t, target) for t in rel.dtypes]
    names = _unique(rel.columns) if target == "parquet" else rel.columns
    if not any(casts) and names == rel.columns:
        return rel
    columns = ", ".join(
        f"CAST(#{i} AS {cast}) AS {_quoted(name)}" if cast else f"#{i} AS {_quoted(name)}"
        for i, (name, cast) in enumerate(zip(names, casts, strict=True), start=1)
    )
    rendered = rel.query("q", f"SELECT {columns} FROM q")
    assert rendered is not None  # a SELECT always answers a relation
    return rendered


@contextmanager
def local_reader(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    timeout_s: float,
    limit: int | None = None,
    json_lines: bool = False,
    target: Target = "arrow",
    batch_rows: int = BATCH_ROWS,
    limits: Limits | None = None,
) -> Iterator[pa.RecordBatchReader]:
    """A reader of one SELECT on a `local_sandbox` connection, stopped `timeout_s` after it starts;
    with `json_lines` each row comes rendered by DuckDB as one JSON object in a column `line`
    (NaN and infinities as strings), else the columns `target` (arrow, csv, parquet) cannot carry
    come as DuckDB's text. DuckDB's errors inside the block come out as SqlRefused (or
    SqlTimedOut, SqlOutOfMemory)."""
    limits = limits or Limits()
    query = _statement(conn, sql)
    with _deadline(conn, timeout_s) as fired:
        try:
            rel = conn.sql(query)
            if limit is not None:
                rel = rel.limit(limit)
            if json_lines:
                rendered = rel.query("q", f"SELECT to_json(q)::VARCHAR AS {JSON_LINE} FROM q")
                assert rendered is not None  # a SELECT always answers a relation
                reader = rendered.to_arrow_reader(batch_rows)
                yield pa.RecordBatchReader.from_batches(reader.schema, map(json_lines_batch, reader))
            else:
                yield _rendered(rel, target).to_arrow_reader(batch_rows)
        except (duckdb.Error, pa.ArrowException, MemoryError, OSError) as exc:
            # the caller's own OSError (a file it writes to: ENOSPC) carries an errno; DuckDB's
            # error met while reading on (a late `error()` or cast) crosses Arrow's stream as an
            # OSError without one, and is the query's fault as it would have been up front
            if isinstance(exc, OSError) and exc.errno is not None and not is_out_of_memory(exc):
                raise
            raise _refusal(conn, exc, fired, timeout_s, limits) from exc


def run_local(
    root: Path,
    sql: str,
    *,
    limit: int = 1000,
    timeout_s: float = 10.0,
    limits: Limits | None = None,
) -> SqlResult:
    """`run_sql` in this process (the worker's end of it)."""
    started = time.perf_counter()
    limits = limits or Limits()
    with local_sandbox(root, limits) as conn:
        rel = _relation(conn, sql, limits)
        columns = [SqlColumn(n, str(t)) for n, t in zip(rel.columns, rel.dtypes, strict=True)]
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        with local_reader(
            conn,
            sql,
            timeout_s=timeout_s,
            limit=limit + 1,
            batch_rows=min(limit + 1, BATCH_ROWS),
            limits=limits,
        ) as reader:
            for batch in reader:
                batches.append(batch)
                rows, size = rows + batch.num_rows, size + batch.nbytes
                if size > limits.answer_bytes:
                    raise _too_large(limits, rows)
                if rows > limit:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
    truncated = table.num_rows > limit
    return SqlResult(columns, table.slice(0, limit), truncated, (time.perf_counter() - started) * 1000)


def _too_large(limits: Limits, rows: int) -> SqlAnswerTooLarge:
    return SqlAnswerTooLarge(
        f"the answer grew past {size_text(limits.answer_bytes)} (FLOWHISTORY_SQL_MAX_ANSWER_BYTES) by its "
        f"first {rows} rows and was stopped: ask for fewer rows (`limit`) or columns, or write it to "
        "a file with `flowhistory sql --output` (streamed, any size)"
    )


def write_sql(
    root: Path,
    sql: str,
    output: Path,
    fmt: Format,
    *,
    limit: int | None = None,
    timeout_s: float = 600.0,
    limits: Limits | None = None,
) -> int:
    """Every row of one SELECT over the export (at most `limit`) into `output`, streamed; returns
    how many. It goes to a hidden partial file renamed over `output` at the end, so a refused or
    stopped query leaves no half file and whatever `output` held before."""
    partial = output.with_name(f".{output.name}.partial")
    rows = 0

    def counted(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in reader:
            rows += batch.num_rows
            yield batch

    try:
        with (
            sandbox(root, limits) as conn,
            query_reader(
                conn,
                sql,
                timeout_s=timeout_s,
                limit=limit,
                json_lines=fmt is Format.JSONL,
                target="csv" if fmt is Format.CSV else "parquet",
            ) as reader,
            partial.open("wb") as out,
        ):
            for chunk in encode(fmt, counted(reader), reader.schema):
                out.write(chunk)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def run_console_query(settings: Settings, sql: str, *, limit: int, timeout_s: float) -> SqlResult:
    """The SQL console (`POST /sql`): `run_sql` over the export with the server's caps on the
    caller's `limit` and `timeout_s` (over a cap is refused, naming the field)."""
    if limit > settings.sql_max_rows:
        raise InvalidInput(f"limit must be at most {settings.sql_max_rows}", field="limit")
    if timeout_s > settings.sql_max_timeout_s:
        raise InvalidInput(f"timeout_s must be at most {settings.sql_max_timeout_s:g}", field="timeout_s")
    return run_sql(export_root(settings), sql, limit=limit, timeout_s=timeout_s, limits=limits_from(settings))


def _relation(conn: duckdb.DuckDBPyConnection, sql: str, limits: Limits) -> duckdb.DuckDBPyRelation:
    """The query bound but not run: its column names and DuckDB types."""
    try:
        return conn.sql(_statement(conn, sql))
    except (duckdb.Error, MemoryError) as exc:
        raise (_out_of_memory(exc, limits) if is_out_of_memory(exc) else _explained(conn, exc)) from exc


# -- through a worker process (sql_worker.py): what callers use ----------------------------------------


def _pool(limits: Limits) -> WorkerPool:
    return pool_for(limits.worker_memory, limits.workers, HANDLER)


def _request(op: str, root: Path, sql: str, timeout_s: float, limits: Limits, **more: object) -> Header:
    return {
        "op": op,
        "root": str(root),
        "sql": sql,
        "timeout_s": timeout_s,
        "memory_limit": limits.memory_limit,
        "threads": limits.threads,
        "worker_memory": limits.worker_memory,
        "answer_bytes": limits.answer_bytes,
        **more,
    }


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def run_sql(
    root: Path,
    sql: str,
    *,
    limit: int = 1000,
    timeout_s: float = 10.0,
    limits: Limits | None = None,
) -> SqlResult:
    """Run one SELECT over the export in a worker process; at most `limit` rows come back,
    `truncated` says if more. Past the time or memory limits: SqlTimedOut or SqlOutOfMemory."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    if timeout_s <= 0:
        raise InvalidInput("timeout_s must be positive", field="timeout_s")
    limits = limits or Limits()
    started = time.perf_counter()
    header, payload = _pool(limits).run(_request("run", root, sql, timeout_s, limits, limit=limit), timeout_s)
    assert payload is not None
    table = pa.ipc.open_stream(payload).read_all()
    columns = [SqlColumn(name, kind) for name, kind in header["columns"]]
    return SqlResult(columns, table, bool(header["truncated"]), (time.perf_counter() - started) * 1000)


@dataclass(frozen=True, slots=True)
class SqlSession:
    """Where `query_reader` runs its queries: the export and the limits."""

    root: Path
    limits: Limits


@contextmanager
def sandbox(root: Path, limits: Limits | None = None) -> Iterator[SqlSession]:
    """A session over the export; each `query_reader` on it runs in a worker of the pool."""
    yield SqlSession(root, limits or Limits())


@contextmanager
def query_reader(
    session: SqlSession,
    sql: str,
    *,
    timeout_s: float,
    limit: int | None = None,
    json_lines: bool = False,
    target: Target = "arrow",
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatchReader]:
    """Every row of one SELECT (or `limit`), streamed from a worker batch by batch (the pipe
    holds back the worker while the reader is not read); stopped `timeout_s` after it starts.
    With `json_lines` each row comes rendered by DuckDB as one JSON object in a column `line`,
    else the columns `target` (arrow, csv, parquet) cannot carry as DuckDB's text (`local_reader`).
    Leaving the block before the end kills that worker (a new one takes its place)."""
    request = _request(
        "stream",
        session.root,
        sql,
        timeout_s,
        session.limits,
        limit=limit,
        json_lines=json_lines,
        target=target,
        batch_rows=batch_rows,
    )
    with _pool(session.limits).worker(timeout_s) as worker:
        worker.send(request)
        deadline = time.monotonic() + timeout_s + KILL_GRACE_S
        _, payload = worker.receive(deadline, timeout_s)
        assert payload is not None
        schema = pa.ipc.read_schema(pa.py_buffer(payload))

        def batches() -> Iterator[pa.RecordBatch]:
            while True:
                header, body = worker.receive(deadline, timeout_s)
                if header["kind"] == "end":
                    return
                assert body is not None
                yield pa.ipc.read_record_batch(pa.py_buffer(body), schema)

        yield pa.RecordBatchReader.from_batches(schema, batches())


def serve_in_worker(request: Header, send: Send) -> None:
    """The worker's end (sql_worker.serve calls it): run the request here, answer in frames."""
    limits = Limits(
        memory_limit=str(request["memory_limit"]),
        threads=int(request["threads"]),
        worker_memory=int(request["worker_memory"]),
        workers=1,
        answer_bytes=int(request["answer_bytes"]),
    )
    try:
        _serve(request, send, limits)
    except Exception as exc:  # out of memory wherever it struck (in any form) is a 413
        if is_out_of_memory(exc):
            raise _out_of_memory(exc, limits) from exc
        raise


def _target(value: object) -> Target:
    if value == "csv":
        return "csv"
    return "parquet" if value == "parquet" else "arrow"


def _serve(request: Header, send: Send, limits: Limits) -> None:
    root, sql, timeout_s = Path(request["root"]), str(request["sql"]), float(request["timeout_s"])
    if request["op"] == "run":
        result = run_local(root, sql, limit=int(request["limit"]), timeout_s=timeout_s, limits=limits)
        columns = [[c.name, c.type] for c in result.columns]
        send({"kind": "result", "columns": columns, "truncated": result.truncated}, _ipc(result.table))
        return
    with (
        local_sandbox(root, limits) as conn,
        local_reader(
            conn,
            sql,
            timeout_s=timeout_s,
            limit=request["limit"],
            json_lines=bool(request["json_lines"]),
            target=_target(request.get("target")),
            batch_rows=int(request["batch_rows"]),
            limits=limits,
        ) as reader,
    ):
        send({"kind": "schema"}, reader.schema.serialize().to_pybytes())
        for batch in reader:
            send({"kind": "batch"}, batch.serialize().to_pybytes())
    send({"kind": "end"}, None)
