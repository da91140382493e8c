"""The retention archive: Parquet files of every run retention deletes or trims, read back by restore.

Layout as the exports: `<archive>/executions/date=YYYY-MM-DD/<uuid>.parquet` (zstd; `date` is
the run's UTC day), JSON as VARCHAR, timestamps UTC, plus `archived_at` and `archive_reason`
(`delete` or `trim`). DuckDB writes the files into a staging folder beside the tree and each is
renamed into place, so a reader never sees half a file, and files are only ever added: a run
trimmed and later deleted is in the archive twice (restore keeps the copy with its payload).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from analytics.config import Settings
from analytics.store import Connection

TABLE = "executions"
_TEXT_TYPES = {"JSON", "UUID"}


@dataclass(frozen=True, slots=True)
class Written:
    rows: int
    files: list[str]


def archive_root(settings: Settings) -> Path:
    return Path(settings.archive_dir) if settings.archive_dir else settings.data_dir / "archive"


def executions_columns(conn: Connection) -> list[tuple[str, str]]:
    """(name, type) of the executions table in order; later migrations' columns included."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns()"
            " WHERE table_name = 'executions' AND schema_name = 'main' ORDER BY column_index"
        ).fetchall()
    ]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write(conn: Connection, root: Path, source: str, archived_at: datetime) -> Written:
    """Archive the rows of `source` (a query with `e.*`-style executions columns and an `action`
    column) before they are removed. Runs on the writer, inside the pass's transaction: if this
    fails, nothing is deleted."""
    cols = ", ".join(
        f"{name}::VARCHAR AS {name}" if kind in _TEXT_TYPES else name for name, kind in executions_columns(conn)
    )
    staging = root / ".staging" / uuid.uuid4().hex
    staging.mkdir(parents=True, exist_ok=True)
    try:
        select = (
            f"SELECT {cols}, strftime(created_at, '%Y-%m-%d') AS date,"
            f" {_literal(archived_at.isoformat(sep=' '))}::TIMESTAMP AS archived_at, action AS archive_reason"
            f" FROM ({source})"
        )
        rows = conn.execute(
            f"COPY ({select}) TO {_literal(str(staging))} (FORMAT parquet, COMPRESSION zstd,"
            " PARTITION_BY (date), FILENAME_PATTERN '{uuid}', OVERWRITE_OR_IGNORE)"
        ).fetchall()
        files = []
        for part in sorted(staging.glob("date=*/*.parquet")):
            target = root / TABLE / part.parent.name / part.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
            files.append(str(target))
        return Written(int(rows[0][0]) if rows else 0, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def files_between(root: Path, start: datetime, end: datetime) -> list[Path]:
    """Archive files whose day partition can hold runs in [start, end)."""
    first: date = start.date()
    last: date = (end - timedelta(microseconds=1)).date()
    found = []
    for folder in sorted((root / TABLE).glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            found.extend(sorted(folder.glob("*.parquet")))
    return found
