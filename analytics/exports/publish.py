"""Write Parquet files into a staging folder with DuckDB, then publish them whole to a target.

DuckDB's `COPY ... PARTITION_BY (date)` is the fast writer (one pass, zstd, uuid names); it
writes into a fresh staging folder, never into the published tree, because readers of a tree
being written saw half files. Publishing is the target's job (rename or upload).
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.core.errors import Conflict
from analytics.core.store import Connection, prepare_connection
from analytics.exports.layout import parse_partition
from analytics.exports.targets import Target

_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


class ExportBusy(Conflict):
    pass


@contextmanager
def target_lock(target: Target, *, wait: bool = True) -> Iterator[None]:
    """One writer per target at a time in this process: export cycles, compaction, archive
    writes. Without `wait`, a busy target raises ExportBusy (409) at once."""
    with _locks_guard:
        lock = _locks[target.url]
    if not lock.acquire(blocking=wait):
        raise ExportBusy(f"the export target {target.url} is busy (an export or compaction is running)")
    try:
        yield
    finally:
        lock.release()


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def staging(target: Target) -> Iterator[Path]:
    """A fresh staging folder, removed afterwards whatever happens (nothing staged is published
    twice, and a failed cycle leaves nothing a reader could find)."""
    folder = target.staging_root() / str(uuid.uuid4())
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clear_staging(target: Target) -> None:
    """Remove what a crashed cycle left in staging; only this process writes the target."""
    root = target.staging_root()
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def copy_partitioned(conn: Connection, select_sql: str, dest: Path) -> int:
    """`select_sql` (which has a `date` column) into `dest/date=X/<uuid>.parquet`; rows written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    rows = conn.execute(
        f"COPY ({select_sql}) TO {sql_literal(str(dest))} (FORMAT parquet, PARTITION_BY (date),"
        " COMPRESSION zstd, FILENAME_PATTERN '{uuid}')"
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def copy_file(conn: Connection, select_sql: str, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    rows = conn.execute(
        f"COPY ({select_sql}) TO {sql_literal(str(dest))} (FORMAT parquet, COMPRESSION zstd)"
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def copy_whole_file(conn: Connection, select_sql: str, dest: Path) -> int:
    """A small table's one file (flows, annotations) with every column nullable, as the
    export's schema says: DuckDB's COPY marks a column `not null` when this file's rows hold no
    NULL, so the annotations file flipped schema between cycles (no notes yet, then one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    table: pa.Table = conn.sql(select_sql).to_arrow_table()
    schema = pa.schema([field.with_nullable(True) for field in table.schema])
    pq.write_table(table.cast(schema), dest, compression="zstd")
    return int(table.num_rows)


def staged_partitions(folder: Path) -> dict[date, list[Path]]:
    """The files a partitioned COPY wrote, by day."""
    found: dict[date, list[Path]] = {}
    if not folder.is_dir():
        return found
    for part in folder.iterdir():
        day = parse_partition(part.name)
        if day is not None:
            found[day] = sorted(part.glob("*.parquet"))
    return found


def publish_partitioned(
    data: pa.Table | pa.RecordBatchReader, target: Target, table_name: str, *, prefix: str = ""
) -> list[str]:
    """Append Arrow data to `<target>/<table_name>/date=YYYY-MM-DD/<prefix><uuid>.parquet` (zstd),
    and answer the published paths relative to the target's root.

    `date` is the data's `date` column if it has one, else the UTC date of `created_at`; files
    are staged and published whole, so readers never see half a file. Used by the export and by
    anything else that writes the same layout under another root (e.g. the retention archive).
    """
    conn = duckdb.connect()
    try:
        prepare_connection(conn)
        conn.register("_publish_source", data)
        names = data.schema.names
        if "date" in names:
            select = "SELECT * FROM _publish_source"
        elif "created_at" in names:
            # naive timestamps are UTC in this project; an aware one is converted to UTC
            select = "SELECT *, CAST(timezone('UTC', created_at) AS DATE) AS date FROM _publish_source"
        else:
            raise ValueError("publish_partitioned needs a `date` or `created_at` column")
        with target_lock(target), staging(target) as folder:
            target.upgrade()
            copy_partitioned(conn, select, folder / "out")
            published: list[str] = []
            for day, files in sorted(staged_partitions(folder / "out").items()):
                published += target.append_partition(table_name, day, files, prefix)
            return published
    finally:
        conn.close()
