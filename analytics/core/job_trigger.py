"""Why the job running on this thread runs: "schedule", or "api" when someone asked for it.

The scheduler (analytics/jobs/scheduler.py) sets it on each job's thread; a job that keeps a
record of its runs says so (retention_runs.trigger). It lives here, below both, because the
rooms a job comes from sit below the scheduler's.
"""

from __future__ import annotations

from contextvars import ContextVar

JOB_TRIGGER: ContextVar[str] = ContextVar("job_trigger", default="schedule")
