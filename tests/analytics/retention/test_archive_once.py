"""The archive holds each deleted run once, whatever stopped a pass before its commit.

A pass writes its archive files before its transaction commits (a run is never deleted before
its copy is on disk). Killed in between, or rolled back because a write grouped with it failed
and then run again alone, it left files of runs it did not delete, and the next pass (or the
second try) archived them again: 60,999 rows for 60,000 runs after a kill, every run twice
after a group rollback.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.core.context import Context
from analytics.retention import apply, policies, runs, unfinished
from analytics.retention.policies import Policy
from tests.factories.retention import ADMIN, NOW, all_rows, generate, make_flows

WAIT = 30.0


class Killed(BaseException):
    """The process dying at this point: nothing after it runs (not an Exception: no handler
    of the pass sees it, as none would see kill -9)."""


@pytest.fixture
def world(ctx: Context) -> Context:
    ids = make_flows(ctx, ["a", "b"])
    generate(ctx, list(ids.values()), 400)
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=30), None)
    return ctx


def _archive(ctx: Context) -> tuple[int, int]:
    """(rows, distinct run ids) in the archive."""
    files = [
        str(f) for f in (ctx.settings.db_path.parent / "archive" / "executions").glob("date=*/*.parquet")
    ]
    if not files:
        return 0, 0
    found = (
        duckdb.connect()
        .execute("SELECT count(*), count(DISTINCT id) FROM read_parquet(?)", [files])
        .fetchall()
    )
    return found[0][0], found[0][1]


def _note(ctx: Context) -> Path:
    return ctx.settings.db_path.with_name(ctx.settings.db_path.name + ".retention-pass")


def test_a_pass_killed_before_its_commit_leaves_no_duplicate(
    world: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = world
    before = all_rows(ctx)
    with monkeypatch.context() as m:
        record = runs.record

        def die_before_commit(conn: Any, kind: str, *args: Any, **kw: Any) -> str:
            if kind == "retention":
                raise Killed  # after the archive files are in place, before the commit
            return record(conn, kind, *args, **kw)

        m.setattr(runs, "record", die_before_commit)
        with pytest.raises(Killed):
            apply.run_retention(ctx, now=NOW, compact=False)
    assert all_rows(ctx) == before  # nothing deleted
    rows, ids = _archive(ctx)
    assert rows == ids > 0 and _note(ctx).exists()  # what the kill left: files of undeleted runs
    assert unfinished.discard_unfinished_pass(ctx) > 0  # at the next start
    assert _archive(ctx) == (0, 0) and not _note(ctx).exists()
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    assert summary["deleted"] > 0
    assert _archive(ctx) == (summary["deleted"], summary["deleted"])  # each deleted run once
    assert not _note(ctx).exists()


def test_a_pass_killed_while_staging_its_files_leaves_none_there(
    world: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while its Parquet was being written into `<archive>/_staging/`, a pass left those
    files for good (3-15 MB a kill here): the next start removes them with the pass's note."""
    from analytics.exports import publish

    ctx = world
    staging = ctx.settings.db_path.parent / "archive" / "_staging"
    with monkeypatch.context() as m:
        copy = publish.copy_partitioned

        def die_after_staging(*args: Any, **kw: Any) -> int:
            copy(*args, **kw)
            raise Killed

        m.setattr(publish, "copy_partitioned", die_after_staging)
        m.setattr(publish.shutil, "rmtree", lambda *a, **k: None)  # a kill runs no cleanup
        with pytest.raises(Killed):
            apply.run_retention(ctx, now=NOW, compact=False)
    assert list(staging.rglob("*.parquet")) and _note(ctx).exists()
    unfinished.discard_unfinished_pass(ctx)  # at the next start
    assert list(staging.iterdir()) == [] and not _note(ctx).exists()
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    assert _archive(ctx) == (summary["deleted"], summary["deleted"]) != (0, 0)


def test_the_next_pass_removes_what_a_killed_one_left(
    world: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = world
    with monkeypatch.context() as m:
        m.setattr(runs, "record", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            apply.run_retention(ctx, now=NOW, compact=False)
    summary = apply.run_retention(ctx, now=NOW, compact=False)  # no restart in between
    assert _archive(ctx) == (summary["deleted"], summary["deleted"]) != (0, 0)


def test_a_failed_pass_removes_its_files_at_once(world: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = world
    with monkeypatch.context() as m:
        m.setattr(runs, "record", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            apply.run_retention(ctx, now=NOW, compact=False)
    assert _archive(ctx) == (0, 0) and not _note(ctx).exists()


def test_a_committed_pass_keeps_its_files_when_its_note_outlived_it(world: Context) -> None:
    """Killed after the commit, before the note went: the files are the deleted runs' only copy."""
    ctx = world
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    _note(ctx).write_text(f'{{"pass_id": "{summary["archive_pass"]}", "root": "{summary["archive_root"]}"}}')
    assert unfinished.discard_unfinished_pass(ctx) == 0
    assert _archive(ctx) == (summary["deleted"], summary["deleted"]) != (0, 0)
    assert not _note(ctx).exists()


def test_a_pass_rolled_back_with_its_group_and_run_again_archives_once(world: Context) -> None:
    """The writer commits the writes queued together; one failing rolls all back, and each is
    run again alone: the pass ran twice, and its first files stayed."""
    ctx = world
    started, release = threading.Event(), threading.Event()
    held = ctx.store.submit(lambda _: started.set() or release.wait(WAIT))
    assert started.wait(WAIT)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(apply.run_retention(ctx, now=NOW, compact=False)))
    worker.start()
    deadline = time.monotonic() + WAIT
    while ctx.store.queue_depth() < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    failing = ctx.store.submit(lambda c: c.execute("SELECT error('a write that fails')"))
    assert ctx.store.queue_depth() == 2  # both wait for one commit
    release.set()
    held.result()
    worker.join(WAIT)
    assert failing.exception() is not None and result["deleted"] > 0
    assert _archive(ctx) == (result["deleted"], result["deleted"])
