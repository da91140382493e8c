"""The two threads that prepare chunks of bulk writes beside the writer: the batch endpoint's and
the Open WebUI import's, each chunk on a one-thread DuckDB its thread borrows for the job.

The same two threads serve every job for the process's life, so at most two chunks are prepared
at once, whatever runs (two concurrent batches with two threads each fought over the two cores:
6,100 runs/s against one client's 7,200; two new threads a batch cost ~15 % more CPU a run,
BENCHMARKS.md). Between jobs they hold nothing of DuckDB: threads that kept a connection made
every child forked with a `preexec_fn` (pyspark's launcher) die of a segfault.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import duckdb

PREPARE_WORKERS = 2

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# the batch's connections between batches (a new one costs ~15 % of a 5,000-run batch's time:
# extension load, macros, first plans)
_idle: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="prepare")
        return _pool


def _forgotten_in_child() -> None:
    """A forked child has none of the parent's threads: its first job starts its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forgotten_in_child)


def bounded_duckdb() -> duckdb.DuckDBPyConnection:
    """The batch's: one thread (two chunks are prepared at once, beside the writer) and a memory
    bound (a chunk is at most the body, `max_body_bytes`; a hostile one cannot take the machine)."""
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET memory_limit = '2GB'")
    return con


class Preparers:
    """One job's chunks (a batch, an import) on the preparing threads; each thread borrows a
    DuckDB for them. Made by `connect`, they are closed when the job ends; without it they are
    `bounded_duckdb()`s, kept for the next job."""

    def __init__(self, connect: Callable[[], duckdb.DuckDBPyConnection] | None = None) -> None:
        self._connect = connect
        self._local = threading.local()
        self._borrowed: list[duckdb.DuckDBPyConnection] = []
        self._futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future = _threads().submit(fn, *args)
        self._futures.append(future)
        return future

    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's DuckDB for the job."""
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            if self._connect is not None:
                con = self._connect()
            else:
                try:
                    con = _idle.get_nowait()
                except queue.Empty:
                    con = bounded_duckdb()
            self._local.con = con
            self._borrowed.append(con)
        return con

    def discard(self, con: duckdb.DuckDBPyConnection) -> None:
        """A connection that failed is not reused."""
        self._local.con = None
        self._borrowed.remove(con)
        con.close()

    def close(self, *, cancel: bool = False) -> None:
        """After the job's chunks (those not started yet dropped when `cancel`), its connections
        go back for the next job, or are closed."""
        if cancel:
            for future in self._futures:
                future.cancel()
        wait(self._futures)
        for con in self._borrowed:
            if self._connect is None and _idle.qsize() < PREPARE_WORKERS:
                _idle.put(con)
            else:
                con.close()
        self._borrowed.clear()
