"""Give disk space back: rewrite the executions table, sorted by (flow_id, created_at).

DuckDB never shrinks a file on DELETE, CHECKPOINT or VACUUM (DESIGN.md: 90 % of a 1M-row
table deleted left the file larger). A table written afresh and the old one dropped does shrink
it, once a checkpoint has run, and writing it sorted by flow and time is what makes one flow's
queries read few row groups. The new table is created from the migration's own DDL (primary
key, CHECK constraints), keeps any column later migrations added, gets every index the old one
had, and replaces it in one writer transaction: readers keep their snapshot meanwhile, and a
failure leaves the old table as it was. Views over `executions` (execution_nodes) bind by name
and see the new table.

DuckDB only truncates free blocks at the end of its file, so when the rewrite still leaves much
of the file free, `compact` has the store swap in a fresh copy of itself while the server runs
(`Store.rebuild_file`: `COPY FROM DATABASE`, every table's rows checked, readers paused only for
the close-rename-reopen). `compact_offline` does the same copy for a store no process holds.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.core.context import Context
from analytics.core.migrations.v0002_executions import EXECUTIONS_TABLE
from analytics.core.store import (
    Connection,
    StoreBusy,
    copy_database,
    file_bytes,
    open_alone,
    prepare_connection,
)
from analytics.retention.archive import executions_columns

log = logging.getLogger(__name__)

_NEW = "executions__compacting"
REBUILD_FREE_SHARE = 0.3  # a larger free share after the rewrite: swap in a fresh file
_CREATE = "CREATE TABLE executions ("


@dataclass(frozen=True, slots=True)
class Compacted:
    rows: int
    bytes_before: int
    bytes_after: int
    checkpointed: bool
    seconds: float
    rebuilt: bool = False  # the file was swapped for a fresh copy (Store.rebuild_file)
    rebuild_seconds: float = 0.0  # of `seconds`, the copy and swap
    paused_seconds: float = 0.0  # of those, how long new reads were held back


def store_bytes(path: Path) -> int:
    """The store on disk: the file and its WAL."""
    return file_bytes(path)


def rewrite(conn: Connection) -> int:
    """Replace `executions` by a sorted copy with the same DDL, indexes and rows; on the writer."""
    assert _CREATE in EXECUTIONS_TABLE, "v0002's DDL changed shape; update the compaction"
    before = executions_columns(conn)
    indexes = [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT index_name, sql FROM duckdb_indexes() WHERE table_name = 'executions' AND sql IS NOT NULL"
        ).fetchall()
    ]
    conn.execute(EXECUTIONS_TABLE.replace(_CREATE, f"CREATE TABLE {_NEW} (", 1))
    fresh = {name for name, _ in executions_columns_of(conn, _NEW)}
    for name, kind in before:
        if name not in fresh:  # a column a later migration added
            conn.execute(f'ALTER TABLE {_NEW} ADD COLUMN "{name}" {kind}')
    if [c for c, _ in executions_columns_of(conn, _NEW)] != [c for c, _ in before]:
        raise RuntimeError("the rebuilt executions table would not have the same columns in the same order")
    conn.execute(f"INSERT INTO {_NEW} BY NAME SELECT * FROM executions ORDER BY flow_id, created_at, id")
    old_rows = conn.execute("SELECT count(*) FROM executions").fetchall()[0][0]
    new_rows = conn.execute(f"SELECT count(*) FROM {_NEW}").fetchall()[0][0]
    if old_rows != new_rows:
        raise RuntimeError(f"compaction copied {new_rows} of {old_rows} runs; nothing was changed")
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("DROP TABLE executions")
    conn.execute(f"ALTER TABLE {_NEW} RENAME TO executions")
    for _, sql in indexes:
        conn.execute(sql)
    return int(new_rows)


def executions_columns_of(conn: Connection, table: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns()"
            " WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
            [table],
        ).fetchall()
    ]


def checkpoint(ctx: Context, *, wait_s: float = 30.0) -> bool:
    """CHECKPOINT from a read cursor, outside any transaction (the writer's always has one).

    DuckDB refuses while another transaction is open (a read snapshot, a group commit); those
    are short, so retry until `wait_s`. FORCE CHECKPOINT would abort them instead. False if it
    never got through, or skipped for want of room on the disk (the store's own measure): the
    WAL keeps every commit meanwhile.
    """
    free, need = ctx.store.checkpoint_room()
    if free < need:  # a CHECKPOINT that runs out of space makes DuckDB invalidate the database
        log.warning(
            "checkpoint after compaction skipped: the disk has %d bytes free, it may need %d", free, need
        )
        return False
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            ctx.store.read(lambda c: c.execute("CHECKPOINT").fetchall())
            return True
        except duckdb.TransactionException as exc:
            if time.monotonic() >= deadline:
                log.warning("checkpoint after compaction deferred: %s", exc)
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _free_share(ctx: Context) -> float:
    total, free = ctx.store.read(
        lambda c: c.execute("SELECT total_blocks, free_blocks FROM pragma_database_size()").fetchall()
    )[0]
    return free / total if total else 0.0


def compact(ctx: Context) -> Compacted:
    """Rewrite the table sorted and checkpoint; if the file is still mostly free blocks, swap in
    a fresh copy of the store while it stays open (`Store.rebuild_file`).

    DuckDB only truncates free blocks at the end of the file, and some block it still uses
    (overflow strings, metadata) tends to stay near the old end: at 1M runs, 90 % deleted, the
    in-place rewrite left 2.6 of 3.3 GB. A fresh file has no free blocks at all. The swap is
    skipped (logged) when a download stream holds a cursor or reads do not drain in time; the
    next compaction tries again.
    """
    started = time.monotonic()
    before = store_bytes(ctx.store.path)
    rows = ctx.store.write(rewrite)
    ok = checkpoint(ctx)
    rebuilt, rebuild_seconds, paused_seconds = False, 0.0, 0.0
    share = _free_share(ctx)
    if share > REBUILD_FREE_SHARE:
        try:
            done = ctx.store.rebuild_file()
        except StoreBusy as exc:
            log.warning("compaction left %.0f %% of the file free; the file swap waits: %s", share * 100, exc)
        else:
            rows, ok, rebuilt = done.tables["main.executions"], True, True
            rebuild_seconds, paused_seconds = done.seconds, done.paused_seconds
    seconds = round(time.monotonic() - started, 3)
    after = store_bytes(ctx.store.path)
    return Compacted(int(rows), before, after, ok, seconds, rebuilt, rebuild_seconds, paused_seconds)


def compact_offline(path: Path) -> Compacted:
    """While no process holds the store: copy every table (schema, constraints, indexes, views)
    into a fresh file with `COPY FROM DATABASE`, then swap the files. A fresh file has no free
    blocks at all, so this always gives back everything the online rewrite could not.

    Raises StoreLocked if a server holds the store (DuckDB allows one process per file).
    """
    started = time.monotonic()
    fresh = path.with_name(path.name + ".compacting")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    open_alone(path, "stop the server first").close()  # the WAL folded in: the copy reads everything
    before = store_bytes(path)
    quoted = str(path).replace("'", "''")
    target = str(fresh).replace("'", "''")
    try:
        with duckdb.connect() as conn:
            prepare_connection(conn)
            conn.execute(f"ATTACH '{quoted}' AS src (READ_ONLY)")
            conn.execute(f"ATTACH '{target}' AS dst")
            tables = copy_database(conn, "src", "dst")
            conn.execute("DETACH src")
            conn.execute("DETACH dst")
        with open(fresh, "rb") as f:
            os.fsync(f.fileno())
    except BaseException:
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    os.replace(fresh, path)
    seconds = round(time.monotonic() - started, 3)
    return Compacted(tables["main.executions"], before, store_bytes(path), True, seconds, True, seconds)
