"""The log of retention passes, compactions and restores (table `retention_runs`), and the lock that
keeps them one at a time in this process."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import Conflict, InvalidInput
from analytics.core.jsonio import dumps_text
from analytics.core.store import Connection

# stage name, done, total (total 0: not known); called on the writer thread
Progress = Callable[[str, int, int], None]

_busy = threading.Lock()
_busy_with: list[str] = []
# what a 409 says is running: "a retention retention" read oddly
_RUNNING = {
    "retention": "a retention pass",
    "compact": "a compaction",
    "restore": "a restore from the archive",
}


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    kind: str
    trigger: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error: str | None
    summary: dict[str, Any]


@contextmanager
def exclusive(kind: str) -> Iterator[None]:
    """One retention, compaction or restore at a time (each rewrites what the others read)."""
    if not _busy.acquire(blocking=False):
        raise Conflict(
            f"{_RUNNING.get(_busy_with[0] if _busy_with else '', 'a retention task')} is already running"
        )
    _busy_with[:] = [kind]
    try:
        yield
    finally:
        _busy_with.clear()
        _busy.release()


def record(
    conn: Connection,
    kind: str,
    trigger: str,
    started_at: datetime,
    finished_at: datetime,
    summary: dict[str, Any],
    error: str | None = None,
) -> str:
    run_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO retention_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, kind, trigger, started_at, finished_at, error is None, error, dumps_text(summary)],
    )
    return run_id


def update_summary(conn: Connection, run_id: str, summary: dict[str, Any], finished_at: datetime) -> None:
    conn.execute(
        "UPDATE retention_runs SET summary = ?, finished_at = ? WHERE id = ?",
        [dumps_text(summary), finished_at, run_id],
    )


def list_runs(ctx: Context, *, limit: int = 20, kind: str | None = None) -> list[RunRecord]:
    """The newest runs first."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    if kind is not None and kind not in ("retention", "compact", "restore"):
        raise InvalidInput("kind must be retention, compact or restore", field="kind")
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, kind, trigger, started_at, finished_at, ok, error, summary FROM retention_runs"
            f" {where} ORDER BY started_at DESC, id LIMIT ?",
            [*params, limit],
        ).fetchall()
    )
    return [RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7])) for r in rows]


def running() -> str | None:
    """What this process is running now (retention, compact, restore), if anything."""
    return _busy_with[0] if _busy_with else None


def quiet(stage: str, done: int, total: int) -> None:
    """The progress callback that reports nothing."""


def log_failure(ctx: Context, kind: str, trigger: str, started: datetime, exc: Exception) -> None:
    """Record a failed run, so its error is visible; never raises (the store may be what failed)."""
    detail = f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}"
    with contextlib.suppress(Exception):
        ctx.store.write(lambda c: record(c, kind, trigger, started, utc_now(), {}, error=detail))
