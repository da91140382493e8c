"""The export and its compaction are scheduler jobs with their own interval settings."""

from __future__ import annotations

from analytics.core.context import Context
from analytics.exports import compact, run_export
from analytics.jobs.registry import default_jobs


def test_export_jobs_follow_their_settings(ctx: Context) -> None:
    ctx.settings.export_interval_s = 120
    ctx.settings.export_compaction_interval_s = 0  # on demand only
    jobs = {j.name: j for j in default_jobs(ctx)}
    assert jobs["export"].every_s == 120 and jobs["export"].run is run_export
    assert jobs["export-compaction"].every_s == 0 and jobs["export-compaction"].run is compact
