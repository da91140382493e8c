"""One in-process scheduler for exports, compaction, retention and alert evaluation.

Each job runs on a thread of its own, so a long export never delays an alert evaluation; a
job that is still running when it comes due again is skipped, never started twice; a job
that raises is recorded as failed and runs again at its next time. The state of every job is
also written to a JSON file beside the store, so the CLI can show it while the server holds
the store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics.core.clock import iso_utc, utc_now_aware
from analytics.core.errors import Conflict, NotFound
from analytics.core.job_trigger import JOB_TRIGGER

if TYPE_CHECKING:
    from analytics.core.context import Context

log = logging.getLogger("flowhistory.scheduler")


@dataclass(frozen=True, slots=True)
class Job:
    """`run(ctx)` returns a JSON-able summary; `every_s` <= 0 means on demand only. The first
    run comes `first_after_s` after start (default: one interval)."""

    name: str
    every_s: float
    run: Callable[[Context], Any]
    first_after_s: float | None = None


@dataclass
class JobState:
    name: str
    every_s: float
    running: bool = False
    runs: int = 0
    failures: int = 0
    # runs that did not start their work: another operation held what they need (a Conflict,
    # e.g. retention while a compaction runs); neither a run nor a failure
    skipped: int = 0
    last_skipped: str | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_duration_s: float | None = None
    last_ok: bool | None = None
    last_result: Any = None
    last_error: str | None = None
    next_run: datetime | None = None
    # monotonic time of the next run; None when the job runs on demand only
    _due: float | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        state = asdict(self)
        del state["_due"]
        for key, value in state.items():
            if isinstance(value, datetime):  # with `Z`, as the API writes times
                state[key] = iso_utc(value)
        return state


# stdlib json on purpose: the status file is written (and read back by the CLI) with it, not orjson
def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class Scheduler:
    def __init__(
        self,
        ctx: Context,
        jobs: list[Job],
        *,
        status_file: Path | None = None,
        clock: Callable[[], datetime] = utc_now_aware,
    ) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._ctx = ctx
        self._jobs = {j.name: j for j in jobs}
        self._states = {j.name: JobState(j.name, j.every_s) for j in jobs}
        self._errors: dict[str, Exception] = {}  # each job's last failure, for a caller that waited
        self._status_file = status_file
        self._clock = clock
        self._lock = threading.Condition()
        self._save_lock = threading.Lock()
        self._stopping = False
        self._loop: threading.Thread | None = None
        self._workers: dict[str, threading.Thread] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """First runs come one interval after start unless a job says otherwise: a restart loop
        never hammers a job."""
        now = time.monotonic()
        with self._lock:
            for name, job in self._jobs.items():
                if job.every_s > 0:
                    first = job.every_s if job.first_after_s is None else job.first_after_s
                    self._set_due(self._states[name], now + first)
        self._save()
        self._loop = threading.Thread(target=self._run_loop, name="flowhistory-scheduler", daemon=True)
        self._loop.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling, and give running jobs `timeout` seconds to finish."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            workers = list(self._workers.values())
        if self._loop is not None:
            self._loop.join(timeout)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    # -- queries and commands ----------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self._jobs

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.public() for s in self._states.values()]

    def job_status(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._state(name).public()

    def last_error(self, name: str) -> Exception | None:
        """What the job's last run raised (None: it succeeded), for a caller to answer as its own."""
        with self._lock:
            self._state(name)
            return self._errors.get(name)

    def run_now(
        self, name: str, *, wait: bool = True, timeout: float | None = None, trigger: str = "api"
    ) -> dict[str, Any]:
        """Run a job at once (Conflict if it is running); with `wait`, answer its new state.
        `trigger`: who asked (a job that records its runs says so)."""
        with self._lock:
            state = self._state(name)
            if self._stopping:
                raise Conflict("the scheduler is stopping")
            if state.running:
                raise Conflict(f"job {name!r} is already running (since {state.last_started})")
            worker = self._launch(name, trigger)
        if wait:
            worker.join(timeout)
        return self.job_status(name)

    # -- internals ---------------------------------------------------------------------------

    def _state(self, name: str) -> JobState:
        try:
            return self._states[name]
        except KeyError:
            raise NotFound(f"no job named {name!r}; jobs: {', '.join(sorted(self._states))}") from None

    def _set_due(self, state: JobState, due: float) -> None:
        state._due = due
        state.next_run = self._clock() + timedelta(seconds=max(0.0, due - time.monotonic()))

    def _run_loop(self) -> None:
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                for name, state in self._states.items():
                    if state._due is not None and state._due <= now:
                        # a job still running is skipped this time, never started twice
                        if not state.running:
                            self._launch(name)
                        self._set_due(state, now + self._jobs[name].every_s)
                dues = [s._due for s in self._states.values() if s._due is not None]
                self._lock.wait(timeout=(min(dues) - now) if dues else None)

    def _launch(self, name: str, trigger: str = "schedule") -> threading.Thread:
        """Mark running and start the job's thread; caller holds the lock."""
        state = self._states[name]
        state.running = True
        state.last_started = self._clock()
        worker = threading.Thread(target=self._execute, args=(name, trigger), name=f"job-{name}", daemon=True)
        self._workers[name] = worker
        worker.start()
        return worker

    def _execute(self, name: str, trigger: str = "schedule") -> None:
        JOB_TRIGGER.set(trigger)  # this thread's own context
        started = time.monotonic()
        result: Any = None
        error: str | None = None
        raised: Exception | None = None
        try:
            result = _jsonable(self._jobs[name].run(self._ctx))
        except Conflict as exc:  # another operation holds what it needs: skipped, not failed
            log.info("job %s skipped: %s", name, exc.detail)
            self._skipped(name, exc)
            return
        except Exception as exc:  # a failing job must never stop the others or the server
            log.exception("job %s failed", name)
            error = f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}"
            raised = exc.with_traceback(None)
        with self._lock:
            if raised is None:
                self._errors.pop(name, None)
            else:
                self._errors[name] = raised
            state = self._states[name]
            state.running = False
            state.runs += 1
            state.last_finished = self._clock()
            state.last_duration_s = round(time.monotonic() - started, 6)
            state.last_ok = error is None
            state.last_result = result if error is None else None
            state.last_error = error
            if error is not None:
                state.failures += 1
            self._workers.pop(name, None)
            self._lock.notify_all()
        self._save()

    def _skipped(self, name: str, exc: Conflict) -> None:
        with self._lock:
            self._errors[name] = exc.with_traceback(None)  # for a caller that waited: its 409
            state = self._states[name]
            state.running = False
            state.skipped += 1
            state.last_skipped = f"{self._clock().isoformat()}: {exc.detail}"
            self._workers.pop(name, None)
            self._lock.notify_all()
        self._save()

    def _save(self) -> None:
        """Write the states atomically (tmp + rename) for `flowhistory jobs`."""
        if self._status_file is None:
            return
        # one writer at a time: the job threads shared one tmp file, so a rename could publish
        # another thread's half-written file (the CLI read it torn) or find it gone (an error)
        with self._save_lock:
            payload = {"written_at": iso_utc(self._clock()), "jobs": self.status()}
            tmp = self._status_file.with_name(self._status_file.name + ".tmp")
            try:
                tmp.write_text(json.dumps(payload, indent=2, default=str))
                os.replace(tmp, self._status_file)
            except OSError:
                log.exception("could not write %s", self._status_file)


def read_status_file(path: Path) -> dict[str, Any] | None:
    """The states a running (or the last) server wrote; None if it never wrote any."""
    try:
        status: dict[str, Any] = json.loads(path.read_text())
        return status
    except FileNotFoundError:
        return None
