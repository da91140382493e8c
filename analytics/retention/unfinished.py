"""A retention pass that did not commit: its archive files are removed, so each run is archived once.

The archive files are on disk before the pass's transaction commits (a run is never deleted
before its copy is), so a pass that does not commit (killed, failed, or rolled back with the
writes grouped with it and run again alone) leaves files of runs it did not delete, which the
next pass archives again. Before it writes, a pass notes its id beside the store
(`<db>.retention-pass`); the note goes after the commit. A note found later (at start, before the
next pass archives, or by the same pass run again) whose pass is not in `retention_runs` means
those files' runs are all still stored: the files are removed. A pass that did commit keeps its
files, whatever happened to its note.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from analytics.core.context import Context
from analytics.core.store import Connection
from analytics.retention import archive

log = logging.getLogger(__name__)


def note_path(ctx: Context) -> Path | None:
    path = Path(ctx.store.path)
    return None if str(path) == ":memory:" else path.with_name(path.name + ".retention-pass")


def committed(conn: Connection, pass_id: str) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM retention_runs WHERE json_extract_string(summary, '$.archive_pass') = ?",
        [pass_id],
    ).fetchall()
    return bool(found[0][0])


def settle(path: Path | None, is_committed: Callable[[str], bool]) -> int:
    """Act on a pass noted beside the store: its files go unless it committed; then the note
    goes. Answers how many files were removed."""
    if path is None or not path.exists():
        return 0
    try:
        noted = json.loads(path.read_text())
        pass_id, root = str(noted["pass_id"]), Path(noted["root"])
    except (OSError, ValueError, KeyError, TypeError) as exc:  # cut short while written: no files yet
        log.warning("ignoring the unreadable retention note %s: %s", path, exc)
        path.unlink(missing_ok=True)
        return 0
    removed = 0 if is_committed(pass_id) else archive.discard_pass(root, pass_id)
    archive.discard_staged(root)  # a kill while files were staged: they were never published
    path.unlink(missing_ok=True)
    return removed


def note(path: Path | None, pass_id: str, root: Path) -> None:
    """Durably, before any file of the pass is written."""
    if path is None:
        return
    scratch = path.with_name(path.name + ".tmp")
    with open(scratch, "w") as f:
        json.dump({"pass_id": pass_id, "root": str(root)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(scratch, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def discard_unfinished_pass(ctx: Context) -> int:
    """At start: remove the archive files of a pass killed before its commit."""
    return settle(note_path(ctx), lambda p: bool(ctx.store.read(lambda c: committed(c, p))))
