"""Worker processes for ad-hoc SQL: a query can use up its own process, never the server's.

DuckDB's `memory_limit` bounds its buffer manager, not every allocation: `SELECT
list(range(2000000000))` asks the allocator for 16 GB in one go, Linux overcommits it, and the
kernel's OOM killer then takes the whole server. So each query runs in a worker process:

- a fresh interpreter started by `subprocess` (an exec, not a fork: the server has threads; not
  multiprocessing's spawn either, which would re-run the server's own main script in each worker);
- which caps its address space (`RLIMIT_AS` = `FLOWHISTORY_SQL_WORKER_MEMORY`) before DuckDB
  opens, so an oversized allocation fails inside the worker (DuckDB answers "Out of Memory
  Error", Python raises MemoryError, or, at worst, the worker dies), and sets `RLIMIT_CORE` 0;
- and, per query, `RLIMIT_CPU` at its CPU time so far + the time limit + a grace: a backstop
  should the parent be gone;
- while the parent waits at most the time limit + `KILL_GRACE_S` for each answer (DuckDB's own
  interrupt, inside the worker, normally stops the query at the time limit), then SIGKILLs the
  worker and starts another. A worker that died, ran out of memory or was left mid-answer is
  replaced the same way; the new one boots in the background.

A small pool of workers stays started (they boot on the first query), so a benign query pays
one round trip over a pipe, not an interpreter start. A query waits for a free worker at most
its time limit. The handler that runs in the worker is named by "module:function" (it imports
DuckDB only after the caps are set); it gets each request (a JSON object) and a `send(header,
payload)` for its answer frames: a JSON header, then, if the header says `"payload": true`,
one frame of bytes (Arrow IPC). An answer ends with a header whose `kind` is in `FINAL`.
"""

from __future__ import annotations

import atexit
import importlib
import json
import math
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from analytics.core.errors import FlowHistoryError, InvalidInput, Refused

KILL_GRACE_S = 1.0  # past the time limit, the parent kills the worker
CPU_GRACE_S = 2.0  # past the time limit (times threads), the kernel's RLIMIT_CPU kills it
BOOT_TIMEOUT_S = 60.0  # a worker that is not ready by then is replaced
EXIT_NO_MEMORY = 3  # a worker that could not even import within its cap
FINAL = frozenset({"result", "end", "error"})

Header = dict[str, Any]
Send = Callable[[Header, bytes | None], None]


class SqlRefused(Refused):
    """A query the sandbox will not run, or that DuckDB refused; `detail` carries DuckDB's reason."""


class SqlLimitExceeded(InvalidInput):
    """A query that ran into a resource limit: it was stopped, and the server is unharmed."""


class SqlTimedOut(SqlLimitExceeded):
    pass


class SqlOutOfMemory(SqlLimitExceeded):
    pass


class SqlAnswerTooLarge(SqlLimitExceeded):
    """An answer larger than the server takes back from a worker (it is held whole, several
    times over, while it becomes JSON): the worker is fine and is kept."""


_KINDS: dict[str, type[SqlLimitExceeded]] = {
    "timeout": SqlTimedOut,
    "memory": SqlOutOfMemory,
    "too_large": SqlAnswerTooLarge,
}


def size_text(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def timed_out(timeout_s: float, how: str = "") -> SqlTimedOut:
    return SqlTimedOut(f"the query ran past its time limit of {timeout_s:g} s and was stopped{how}")


def out_of_memory(memory: int, why: str = "") -> SqlOutOfMemory:
    return SqlOutOfMemory(
        f"the query needed more memory than its worker may use, {size_text(memory)} "
        f"(FLOWHISTORY_SQL_WORKER_MEMORY), and was stopped{why}"
    )


# -- the parent's side ------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The worker imports this very checkout, whatever PYTHONPATH the parent had. Its address
    space is capped (RLIMIT_AS), so what merely reserves it is turned down, each measured in a
    512 MiB worker running `count(*)`, whose peak was within 7 MB of the cap (in CI, two benign
    queries failed: "can't start new thread", "malloc of size 1024 failed"; now ~95 MB under):
    - one malloc arena: glibc reserves 64 MB per arena, up to 8 per core, one per thread that
      ever ran (the worker's own allocations go through DuckDB's jemalloc);
    - Arrow's buffers from glibc malloc, not mimalloc, which reserves ~90 MB up front;
    - one OpenBLAS thread (numpy comes with pyarrow; the worker does no linear algebra): each of
      its threads holds a stack and buffers, ~40 MB on two cores."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["MALLOC_ARENA_MAX"] = "1"
    env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


class Worker:
    """One worker process and its two pipes."""

    def __init__(self, memory: int, handler: str) -> None:
        self.memory = memory
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(req_r), str(resp_w), str(memory), handler],
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_child_env(),
            )
        finally:
            os.close(req_r)
            os.close(resp_w)
        self._requests = Connection(req_w, readable=False)
        self._answers = Connection(resp_r, writable=False)
        self.ready = False
        self.idle = True  # False from a request until its final frame

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive_and_quiet(self) -> bool:
        """An idle worker has nothing to say: a readable pipe is its EOF (or a stray frame)."""
        return self.proc.poll() is None and (not self.ready or not self._answers.poll(0))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._requests.close()
        self._answers.close()

    def _frame(self, deadline: float, timeout_s: float) -> bytes:
        if not self._answers.poll(max(0.0, deadline - time.monotonic())):
            self.kill()
            raise timed_out(timeout_s, f" (its worker was killed {KILL_GRACE_S:g} s later)")
        try:
            return self._answers.recv_bytes()
        except (EOFError, OSError):
            raise self._died() from None

    def _died(self) -> FlowHistoryError:
        """What a worker's unexpected death means, from how it ended."""
        self.kill()
        code = self.proc.returncode
        if code == -signal.SIGXCPU:
            return SqlTimedOut("the query used up its CPU time limit and was stopped")
        if code == EXIT_NO_MEMORY:
            return out_of_memory(self.memory, ": the worker could not even start within it")
        name = signal.Signals(-code).name if code < 0 else f"exit code {code}"
        return out_of_memory(self.memory, f" (its worker ended with {name})")

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            header, _ = self.receive(time.monotonic() + BOOT_TIMEOUT_S, BOOT_TIMEOUT_S)
        except SqlTimedOut:
            raise RuntimeError(f"the SQL worker did not start within {BOOT_TIMEOUT_S:g} s") from None
        if header.get("kind") != "ready":
            raise RuntimeError(f"the SQL worker answered {header!r} instead of ready")
        self.ready = True

    def send(self, request: Header) -> None:
        self.idle = False
        try:
            self._requests.send_bytes(json.dumps(request).encode())
        except OSError:
            raise self._died() from None

    def receive(self, deadline: float, timeout_s: float) -> tuple[Header, bytes | None]:
        """The next answer frame (an error frame raised as its error), waiting until `deadline`."""
        header: Header = json.loads(self._frame(deadline, timeout_s))
        payload = self._frame(deadline, timeout_s) if header.get("payload") else None
        if header.get("kind") in FINAL:
            self.idle = True
        if header.get("kind") == "error":
            raise _error(header)
        return header, payload


def _error(header: Header) -> Exception:
    if header.get("error") == "internal":  # a bug, not the query's fault: the server logs it
        return RuntimeError(f"the SQL worker failed: {header['detail']}")
    kind: type[FlowHistoryError] = _KINDS.get(header.get("error", ""), SqlRefused)
    return kind(header["detail"])


class WorkerPool:
    """`size` workers, each capped at `memory` bytes of address space, running `handler`."""

    def __init__(self, memory: int, size: int, handler: str) -> None:
        self.memory, self.size, self.handler = memory, size, handler
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[Worker] = set()
        self._closed = False
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                return
            worker = Worker(self.memory, self.handler)
            self._workers.add(worker)
        self._idle.put(worker)

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.pid for w in self._workers)

    def busy(self) -> int:
        return self.size - self._idle.qsize()

    @contextmanager
    def worker(self, timeout_s: float) -> Iterator[Worker]:
        """A ready worker for one exchange; back to the pool if it ended cleanly, else replaced."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SqlTimedOut(
                    f"all {self.size} SQL workers stayed busy for the query's time limit of {timeout_s:g} s"
                ) from None
            if worker.alive_and_quiet():
                break
            self._retire(worker)  # died while idle (killed from outside): its replacement is queued
        keep = False
        try:
            worker.wait_ready()
            yield worker
            keep = worker.idle
        except SqlOutOfMemory:
            raise  # never reused: its heap may be in pieces
        except (SqlRefused, SqlTimedOut, SqlAnswerTooLarge):
            keep = worker.idle and worker.proc.poll() is None
            raise
        finally:
            if keep:
                self._idle.put(worker)
            else:
                self._retire(worker)

    def _retire(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)
        self._start()

    def run(self, request: Header, timeout_s: float) -> tuple[Header, bytes | None]:
        """One request, one final answer."""
        with self.worker(timeout_s) as worker:
            worker.send(request)
            return worker.receive(time.monotonic() + timeout_s + KILL_GRACE_S, timeout_s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, set()
        for worker in workers:
            worker.kill()


_pools: dict[tuple[int, int, str], WorkerPool] = {}
_pools_lock = threading.Lock()


def pool_for(memory: int, size: int, handler: str) -> WorkerPool:
    """The process's pool for these caps, started on first use and stopped at exit."""
    key = (memory, size, handler)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = WorkerPool(memory, size, handler)
        return _pools[key]


@atexit.register
def close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def default_workers() -> int:
    return 2 if (os.cpu_count() or 1) >= 2 else 1


# -- the worker's side ------------------------------------------------------------------------------

_BOOT = "import sys; from analytics.exports.sql_worker import serve; serve(sys.argv[1:])"


def _cpu_backstop(timeout_s: float, threads: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + (timeout_s + CPU_GRACE_S) * max(1, threads))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(
        resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
    )


def serve(argv: list[str]) -> None:
    """The worker's main loop: caps first, then the handler's imports, then one request at a time."""
    requests_fd, answers_fd, memory, handler_name = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    requests = Connection(requests_fd, writable=False)
    answers = Connection(answers_fd, readable=False)

    def send(header: Header, payload: bytes | None = None) -> None:
        answers.send_bytes(json.dumps({**header, "payload": payload is not None}).encode())
        if payload is not None:
            answers.send_bytes(payload)

    try:
        module, _, name = handler_name.partition(":")
        handler = getattr(importlib.import_module(module), name)
    except MemoryError:
        os._exit(EXIT_NO_MEMORY)
    send({"kind": "ready"})
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except (EOFError, OSError):  # the parent is gone or closed the pipe
            return
        _cpu_backstop(float(request.get("timeout_s", 60)), int(request.get("threads", 1)))
        try:
            handler(request, send)
        except SqlLimitExceeded as exc:
            send(
                {
                    "kind": "error",
                    "error": next(k for k, kind in _KINDS.items() if isinstance(exc, kind)),
                    "detail": exc.detail,
                }
            )
        except FlowHistoryError as exc:
            send({"kind": "error", "error": "refused", "detail": exc.detail})
        except MemoryError as exc:
            try:
                send({"kind": "error", "error": "memory", "detail": out_of_memory(memory, f": {exc}").detail})
            finally:
                os._exit(EXIT_NO_MEMORY)
        except Exception as exc:  # reported to the parent, which logs it
            send({"kind": "error", "error": "internal", "detail": repr(exc)})
