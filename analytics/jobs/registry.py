"""The jobs the server's scheduler runs: each part of flowhistory adds its own entry here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.alerts.lifecycle import run_alerts_job
from analytics.exports import compact, run_export
from analytics.jobs.scheduler import Job
from analytics.openwebui.sync import purge_orphans
from analytics.retention.apply import scheduled_pass as retention_pass
from analytics.trends import rollups

if TYPE_CHECKING:
    from analytics.core.context import Context


def default_jobs(ctx: Context) -> list[Job]:
    """Every scheduled job; an interval setting of 0 keeps a job on demand only."""
    jobs: list[Job] = []
    jobs.append(Job("alerts", ctx.settings.alert_interval_s, run_alerts_job))
    jobs.append(Job("export", ctx.settings.export_interval_s, run_export))
    jobs.append(Job("export-compaction", ctx.settings.export_compaction_interval_s, compact))
    jobs.append(Job("retention", ctx.settings.retention_interval_s, retention_pass))
    # soon after start too: a store copied in, or days passed while the server was down
    jobs.append(Job("rollups", ctx.settings.rollup_interval_s, rollups.refresh, first_after_s=5))
    if ctx.settings.openwebui_db:
        # runs of flows gone from Open WebUI: invisible at once, deleted after the grace
        jobs.append(Job("openwebui-orphans", ctx.settings.openwebui_orphan_interval_s, purge_orphans))
    return jobs
