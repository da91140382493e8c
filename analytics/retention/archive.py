"""The retention archive: Parquet files of every run retention deletes or trims, read back by restore.

Written by the exports' own publisher (analytics/exports/publish.py), so the layout is the
exports': `<archive>/executions/date=YYYY-MM-DD/<uuid>.parquet` (zstd; `date` is the run's UTC
day; each `date=` entry a real folder, an older archive's symlinks are migrated at its next
write), JSON as VARCHAR (`outputs` always the run's, as in the export), timestamps UTC, plus
`archived_at`, `archive_reason` (`delete` or `trim`) and `flow_owner` (the flow's owner then:
restore gives a run back only to that owner's flow). Files are staged
and renamed into place, so a reader never sees half a file, and only ever added: a run trimmed
and later deleted is in the archive twice (restore takes its payload from the copy that has it, the rest from the newest). No room in
the archive folder fails the pass with FolderFull (nothing deleted); the store is untouched.

The files are published before the pass's transaction commits (a run is never deleted before its
copy is on disk), so a pass that does not commit (killed, or rolled back and run again) leaves
files of runs it did not delete, which the next pass would archive again. Each pass's files are
named `<pass id>-<uuid>.parquet`, and the pass id is noted beside the store before they are
written (apply.py): files of a noted pass that never committed are removed (`discard_pass`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from analytics.core.config import Settings
from analytics.core.errors import FolderFull
from analytics.core.store import Connection, is_disk_full
from analytics.exports.layout import STAGING
from analytics.exports.publish import clear_staging, publish_partitioned
from analytics.exports.targets import LocalTarget

log = logging.getLogger(__name__)

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


def _archived(name: str, kind: str) -> str:
    """A column as the archive holds it: text for JSON and UUIDs, and `outputs` always the run's
    outputs (the store's shared copy of node_results undone, as in the export), so a reader of
    the Parquet sees the run whole; restore shares it again by `outputs_same`."""
    if name == "outputs":
        return 'CAST(CASE WHEN outputs_same THEN node_results ELSE outputs END AS VARCHAR) AS "outputs"'
    return f'"{name}"::VARCHAR AS "{name}"' if kind in _TEXT_TYPES else f'"{name}"'


def write(conn: Connection, root: Path, source: str, archived_at: datetime, *, pass_id: str) -> Written:
    """Archive the rows of `source` (a query over executions columns plus an `action` column)
    before they are removed. Runs on the writer inside the pass's transaction, streaming the rows
    to the exports' publisher (staged files, renamed into place, named after `pass_id`): if this
    fails, nothing is deleted."""
    cols = ", ".join(_archived(name, kind) for name, kind in executions_columns(conn))
    select = (
        f"SELECT {cols}, CAST(created_at AS DATE) AS date, ?::TIMESTAMP AS archived_at,"
        " action AS archive_reason, (SELECT f.user_id FROM flows f WHERE f.id = src.flow_id) AS flow_owner"
        f" FROM ({source}) src"
    )
    rows = int(conn.execute(f"SELECT count(*) FROM ({source})").fetchall()[0][0])
    if not rows:
        return Written(0, [])
    reader = conn.sql(select, params=[archived_at]).to_arrow_reader()
    try:
        target = LocalTarget(root, str(root))
        files = publish_partitioned(reader, target, TABLE, prefix=f"{pass_id}-")
    except Exception as exc:
        if is_disk_full(exc):
            log.error("the archive folder %s has no room: %s", root, exc)
            raise FolderFull(
                "the archive folder's disk is full (FLOWHISTORY_ARCHIVE_DIR): the retention pass "
                "deleted nothing. Free space there, or point the setting at a disk with room, and "
                "run the pass again"
            ) from None
        log.error("writing the archive folder %s failed: %s", root, exc)
        raise
    finally:
        reader.close()  # a result left open on the writer's connection would block it
    return Written(rows, [str(root / f) for f in files])


def discard_pass(root: Path, pass_id: str) -> int:
    """Remove the files a pass that never committed published (its runs are still in the store);
    answers how many."""
    removed = 0
    for path in (root / TABLE).glob(f"date=*/{pass_id}-*.parquet"):
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d archive files of retention pass %s, which did not commit", removed, pass_id)
    return removed


def discard_staged(root: Path) -> None:
    """Remove the files a pass killed while writing them left in the archive's staging folder
    (they stayed for good: megabytes to gigabytes a kill). Only a pass writes there, one at a time."""
    if (root / STAGING).is_dir():
        clear_staging(LocalTarget(root, str(root)))


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
