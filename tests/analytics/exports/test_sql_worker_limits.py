"""Issue 13: a query runs in a pooled worker process, capped in memory (RLIMIT_AS) and time.

Every memory test uses a 512 MiB worker, so a bomb can never take more than that from the
machine; a regression (no cap) would fail the test after a bounded ~2 GB, not exhaust memory.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analytics.exports import sql_sandbox
from analytics.exports.sql_sandbox import Limits, SqlOutOfMemory, SqlTimedOut, run_sql
from tests.analytics.exports import procfs
from tests.analytics.exports.conftest import Exported

MiB = 1024**2
SMALL = Limits(worker_memory=512 * MiB, workers=1)
# grows past DuckDB's own memory_limit (about 1.7 GB without a cap: its list builder does not ask
# the buffer manager), so only the worker's cap stops it
BOMB = "SELECT list(range(100000000)) AS l"
RUNAWAY = "SELECT count(*) AS n FROM range(1000000000) a, range(100000) b"  # 10^14 rows: a runaway cross join


def _count(exported: Exported, limits: Limits) -> int:
    r = run_sql(exported.root, "SELECT count(*) AS n FROM executions", limits=limits, timeout_s=30)
    return int(r.table.to_pylist()[0]["n"])


def _wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + 30  # a safety net, never what the test asserts
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_a_benign_query_leaves_its_worker_room_to_spare(exported: Exported) -> None:
    """The worker's own reservations (malloc arenas, Arrow's allocator, OpenBLAS threads) once
    took its 512 MiB address space to within 7 MB of the cap for a `count(*)`, so a thread or a
    1 KB malloc now and then failed in CI: a benign query answered 413."""
    pool = sql_sandbox._pool(SMALL)
    for sql in ("SELECT count(*) AS n FROM executions", "SELECT * FROM executions ORDER BY id"):
        run_sql(exported.root, sql, limits=SMALL, timeout_s=30)
    [pid] = pool.pids()
    assert procfs.vm_peak(pid) < SMALL.worker_memory - 64 * MiB


@pytest.mark.parametrize("sql", [BOMB, "SELECT list(range(2000000000)) AS l"])
def test_memory_bomb_is_stopped_in_its_worker(exported: Exported, sql: str) -> None:
    _count(exported, SMALL)  # the pool is up
    before = procfs.rss()
    with pytest.raises(SqlOutOfMemory) as info:
        run_sql(exported.root, sql, limits=SMALL, timeout_s=60)
    assert "needed more memory" in info.value.detail
    assert "512 MB (FLOWHISTORY_SQL_WORKER_MEMORY)" in info.value.detail
    assert procfs.rss() - before < 100 * MiB
    assert _count(exported, SMALL) == exported.runs  # the next query runs, on a fresh worker


def test_a_worker_that_ran_out_of_memory_is_replaced(exported: Exported) -> None:
    pool = sql_sandbox._pool(SMALL)
    _count(exported, SMALL)
    [old] = pool.pids()
    with pytest.raises(SqlOutOfMemory):
        run_sql(exported.root, BOMB, limits=SMALL, timeout_s=60)
    [new] = pool.pids()
    assert new != old and procfs.gone(old)
    assert _count(exported, SMALL) == exported.runs


def test_runaway_cross_join_is_stopped_at_its_time_limit(exported: Exported) -> None:
    with pytest.raises(SqlTimedOut) as info:
        run_sql(exported.root, RUNAWAY, limits=SMALL, timeout_s=0.5)
    assert "time limit of 0.5 s" in info.value.detail
    assert _count(exported, SMALL) == exported.runs


def test_a_worker_that_cannot_stop_itself_is_killed_at_the_deadline(exported: Exported) -> None:
    """SIGSTOP: DuckDB's own interrupt never gets to run, so only the parent's deadline helps."""
    pool = sql_sandbox._pool(SMALL)
    _count(exported, SMALL)
    [old] = pool.pids()
    os.kill(old, signal.SIGSTOP)
    with pytest.raises(SqlTimedOut) as info:
        run_sql(exported.root, "SELECT 1 AS x", limits=SMALL, timeout_s=0.5)
    assert "time limit of 0.5 s" in info.value.detail and "killed" in info.value.detail
    assert procfs.gone(old)
    [new] = pool.pids()
    assert new != old
    assert _count(exported, SMALL) == exported.runs


def test_a_worker_killed_mid_query_is_a_clear_error_and_is_replaced(exported: Exported) -> None:
    """As the kernel's OOM killer would: SIGKILL while the query runs."""
    pool = sql_sandbox._pool(SMALL)
    _count(exported, SMALL)
    [old] = pool.pids()
    caught: list[BaseException] = []

    def query() -> None:
        try:
            run_sql(exported.root, RUNAWAY, limits=SMALL, timeout_s=30)
        except BaseException as exc:  # the assertion is below, in the test's thread
            caught.append(exc)

    booted = procfs.cpu_s(old)
    thread = threading.Thread(target=query)
    thread.start()
    _wait_until(lambda: procfs.cpu_s(old) > booted + 0.2, "the query runs")
    os.kill(old, signal.SIGKILL)
    thread.join(timeout=60)
    [exc] = caught
    assert isinstance(exc, SqlOutOfMemory) and "SIGKILL" in exc.detail
    assert pool.pids() != [old]
    assert _count(exported, SMALL) == exported.runs


def test_a_worker_killed_while_idle_is_replaced_before_the_next_query(exported: Exported) -> None:
    pool = sql_sandbox._pool(SMALL)
    _count(exported, SMALL)
    [old] = pool.pids()
    os.kill(old, signal.SIGKILL)
    os.waitid(os.P_PID, old, os.WEXITED | os.WNOWAIT)  # dead for good (its status left to the pool)
    assert _count(exported, SMALL) == exported.runs
    assert pool.pids() != [old]


def test_streamed_answers_stop_at_the_cap_too(exported: Exported) -> None:
    """`query_reader` (what `flowhistory sql --output` streams) runs in a capped worker as well."""
    before = procfs.rss()
    with (
        pytest.raises(SqlOutOfMemory),
        sql_sandbox.sandbox(exported.root, SMALL) as session,
        sql_sandbox.query_reader(session, BOMB, timeout_s=60) as reader,
    ):
        reader.read_all()
    assert procfs.rss() - before < 100 * MiB
    with (
        sql_sandbox.sandbox(exported.root, SMALL) as session,
        sql_sandbox.query_reader(session, "SELECT id FROM executions", timeout_s=30, batch_rows=7) as reader,
    ):
        ids = reader.read_all().column("id").to_pylist()
    assert len(set(ids)) == exported.runs


def test_leaving_a_stream_early_replaces_its_worker(exported: Exported) -> None:
    pool = sql_sandbox._pool(SMALL)
    _count(exported, SMALL)
    [old] = pool.pids()
    with (
        sql_sandbox.sandbox(exported.root, SMALL) as session,
        sql_sandbox.query_reader(session, "SELECT * FROM range(10000000)", timeout_s=30) as reader,
    ):
        next(iter(reader))
    assert procfs.gone(old)
    assert _count(exported, SMALL) == exported.runs


def test_a_cap_too_small_to_start_is_said_plainly(exported: Exported) -> None:
    tiny = Limits(worker_memory=64 * MiB, workers=1)
    with pytest.raises(SqlOutOfMemory) as info:
        run_sql(exported.root, "SELECT 1", limits=tiny, timeout_s=5)
    assert "could not even start" in info.value.detail


def test_missing_export_still_a_refusal_from_the_worker(tmp_path: Path) -> None:
    with pytest.raises(sql_sandbox.SqlRefused) as info:
        run_sql(tmp_path / "none", "SELECT 1", limits=SMALL)
    assert "no export" in info.value.detail


@pytest.mark.parametrize(
    "exc",
    [
        OSError("Out of Memory Error: ArrowBuffer: failed to allocate 16777216 bytes"),
        pa.ArrowInvalid("Out of Memory Error: failed to allocate data of size 1.0 GiB"),
        pa.ArrowMemoryError("malloc of size 64 failed"),
        MemoryError(),
        duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block"),
        RuntimeError("std::bad_alloc"),
        RuntimeError("can't start new thread"),  # the worker's address space used up (seen in CI)
    ],
    ids=repr,
)
def test_every_form_of_out_of_memory_is_recognised(exc: Exception) -> None:
    assert sql_sandbox.is_out_of_memory(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OSError("No such file or directory"),
        duckdb.InvalidInputException("Invalid Input Error: Out of Memory Error"),
    ],
    ids=repr,
)
def test_other_errors_are_not_out_of_memory(exc: Exception) -> None:
    assert not sql_sandbox.is_out_of_memory(exc)
