"""The jobs the server's scheduler runs: each part of flowhistory adds its own entry here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.scheduler import Job

if TYPE_CHECKING:
    from analytics.context import Context


def default_jobs(ctx: Context) -> list[Job]:
    """Every scheduled job; an interval setting of 0 keeps a job on demand only."""
    jobs: list[Job] = []
    return jobs
