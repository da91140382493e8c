"""One retention pass: plan, archive, delete and trim in one writer transaction, then give space back.

Inside one transaction on the writer: the plan query (the same one the dry run uses) fills a
temporary table; the runs it names are written to the Parquet archive (unless their flow's
policy says not to); annotations of deleted runs, the runs, and the heavy JSON of trimmed runs
go (the rolled-up days they leave are marked dirty, so trends over rollups stay exact); the
pass is logged. If archiving fails nothing is deleted. After the commit the counters
of every flow that lost runs are rebuilt from the table, which also bumps the flow's version
and so voids its remembered page starts (page_boundaries.py). Annotated runs are never in a
plan, so `ctx.annotated` stays right.

When a pass deleted at least `retention_compact_fraction` of the runs, the table is rewritten
(reclaim_space.py) so the file shrinks.

The archive files are on disk before the transaction commits: a pass notes its id first and the
note goes after the commit, so the files of a pass that did not commit are removed
(unfinished.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from analytics.core.clock import iso_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import StorageFull
from analytics.core.job_trigger import JOB_TRIGGER
from analytics.core.store import Connection
from analytics.history import changes
from analytics.retention import archive, reclaim_space, runs, unfinished
from analytics.retention.plan import DELETE, TRIM, plan_query, policies_in_force
from analytics.retention.policies import GLOBAL, Policy

log = logging.getLogger(__name__)

MAX_FLOWS_LOGGED = 1000


def run_retention(
    ctx: Context,
    *,
    trigger: str = "manual",
    now: datetime | None = None,
    progress: runs.Progress | None = None,
    compact: bool | None = None,
) -> dict[str, Any]:
    """Apply the stored policies; answers the pass's summary (also logged in retention_runs).

    `compact`: None rewrites the table when the pass deleted enough (the setting), True always,
    False never.
    """
    report = progress or runs.quiet
    with runs.exclusive("retention"):
        started = utc_now()
        clock = time.monotonic()
        at = now or started
        bytes_before = reclaim_space.store_bytes(ctx.store.path)
        root = archive.archive_root(ctx.settings)
        note = unfinished.note_path(ctx)
        try:
            summary: dict[str, Any] = ctx.counters.write_recounting(
                ctx.store,
                lambda c: _apply(c, at, root, report, trigger, started, note),
                lambda s: [f["flow_id"] for f in s["flows_all"] if f["deleted"]],
                after_commit=lambda _: note.unlink(missing_ok=True) if note is not None else None,
                frees_space=True,  # runs even on a full disk (analytics/core/store.py)
            )
        except Exception as exc:
            unfinished.settle(note, lambda _: False)  # it did not commit: its files go now
            runs.log_failure(ctx, "retention", trigger, started, exc)
            raise
        summary.pop("flows_all")
        run_id = summary["run_id"]
        deleted, before = summary["deleted"], summary["runs_before"]
        share = deleted / before if before else 0.0
        wanted = (
            compact
            if compact is not None
            else (deleted > 0 and share >= ctx.settings.retention_compact_fraction)
        )
        if wanted:
            report("compact", 0, 1)
            try:
                done = reclaim_space.compact(ctx)
            except StorageFull as exc:  # the pass committed: its answer says so, and why not this
                log.warning("retention pass %s: the compaction after it failed: %s", run_id, exc.detail)
                summary["compaction"] = {"error": exc.detail}
            else:
                summary["compaction"] = {
                    "rows": done.rows,
                    "seconds": done.seconds,
                    "checkpointed": done.checkpointed,
                }
            report("compact", 1, 1)
        else:
            summary["compaction"] = None
        summary["bytes_before"] = bytes_before
        summary["bytes_after"] = reclaim_space.store_bytes(ctx.store.path)
        summary["seconds"] = round(time.monotonic() - clock, 3)
        try:
            ctx.store.write(lambda c: runs.update_summary(c, run_id, summary, utc_now()))
        except StorageFull:  # the record the pass made in its own transaction stays, less these
            log.warning("retention pass %s: no room to record its compaction and sizes", run_id)
        return summary


def _archived_flows(conn: Connection, policies: dict[str, Policy]) -> list[str] | None:
    """Flows whose runs skip the archive (None: every flow archives)."""
    glob = policies.get(GLOBAL, Policy())
    skip = [fid for fid, p in policies.items() if fid != GLOBAL and not p.archive]
    if glob.archive:
        return skip or None
    keep = [fid for fid, p in policies.items() if fid != GLOBAL and p.archive]
    # the global policy does not archive: every flow without its own archiving policy skips it
    rows = conn.execute(
        "SELECT DISTINCT flow_id FROM retention_plan WHERE flow_id NOT IN (SELECT unnest(?::VARCHAR[]))",
        [keep],
    ).fetchall()
    return [r[0] for r in rows]


def _apply(
    conn: Connection,
    now: datetime,
    root: Any,
    report: runs.Progress,
    trigger: str,
    started: datetime,
    note: Path | None,
) -> dict[str, Any]:
    policies = policies_in_force(conn)
    before = int(conn.execute("SELECT count(*) FROM executions").fetchall()[0][0])
    report("plan", 0, 1)
    sql, params = plan_query(policies, now)
    if all(p.empty for p in policies.values()):
        sql, params = sql + " LIMIT 0", params  # nothing to judge: skip the scan's work
    conn.execute(f"CREATE OR REPLACE TEMP TABLE retention_plan AS {sql}", params)
    counts = conn.execute(
        "SELECT flow_id, count(*) FILTER (WHERE action = 'delete'), count(*) FILTER (WHERE action = 'trim')"
        " FROM retention_plan GROUP BY flow_id ORDER BY flow_id"
    ).fetchall()
    flows = [{"flow_id": f, "deleted": int(d), "trimmed": int(t)} for f, d, t in counts]
    deleted = sum(f["deleted"] for f in flows)
    trimmed = sum(f["trimmed"] for f in flows)
    report("plan", 1, 1)

    report("archive", 0, deleted + trimmed)
    skip = _archived_flows(conn, policies)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE retention_skip AS SELECT unnest(?::VARCHAR[]) AS flow_id", [skip or []]
    )
    written = archive.Written(0, [])
    pass_id = None
    if deleted + trimmed:
        # this pass, run before and rolled back (it shared a commit that failed), left files
        unfinished.settle(note, lambda p: unfinished.committed(conn, p))
        pass_id = f"r{secrets.token_hex(8)}"
        unfinished.note(note, pass_id, Path(root))
        written = archive.write(
            conn,
            root,
            "SELECT e.*, p.action FROM executions e JOIN retention_plan p ON p.id = e.id"
            " WHERE p.flow_id NOT IN (SELECT flow_id FROM retention_skip)",
            now,
            pass_id=pass_id,
        )
    report("archive", deleted + trimmed, deleted + trimmed)

    report("delete", 0, deleted)
    if deleted:
        doomed = f"(SELECT id FROM retention_plan WHERE action = '{DELETE}')"
        changes.invalidate(conn, f"id IN {doomed}", [])  # rolled days they leave are rebuilt
        conn.execute(f"DELETE FROM execution_annotations WHERE execution_id IN {doomed}")
        conn.execute(f"DELETE FROM executions WHERE id IN {doomed}")
    report("delete", deleted, deleted)
    report("trim", 0, trimmed)
    if trimmed:
        conn.execute(
            "UPDATE executions SET inputs = NULL, outputs = NULL, node_results = NULL, outputs_same = false"
            f" WHERE id IN (SELECT id FROM retention_plan WHERE action = '{TRIM}')"
        )
    report("trim", trimmed, trimmed)
    conn.execute("DROP TABLE retention_plan")
    conn.execute("DROP TABLE retention_skip")
    summary: dict[str, Any] = {
        "now": iso_utc(now),
        "runs_before": before,
        "deleted": deleted,
        "trimmed": trimmed,
        "archived": written.rows,
        "archive_files": len(written.files),
        "archive_pass": pass_id,
        "archive_root": str(root),
        "flows": flows[:MAX_FLOWS_LOGGED],
        "flows_truncated": len(flows) > MAX_FLOWS_LOGGED,
        "policies": {k: p.as_dict() for k, p in policies.items()},
    }
    summary["run_id"] = runs.record(conn, "retention", trigger, started, utc_now(), summary)
    summary["flows_all"] = flows
    return summary


def compact_now(ctx: Context, *, trigger: str = "manual") -> dict[str, Any]:
    """Rewrite the table now, whatever was deleted (after a big user delete, for instance)."""
    with runs.exclusive("compact"):
        started = utc_now()
        try:
            done = reclaim_space.compact(ctx)
        except Exception as exc:
            runs.log_failure(ctx, "compact", trigger, started, exc)
            raise
        summary: dict[str, Any] = {
            "rows": done.rows,
            "bytes_before": done.bytes_before,
            "bytes_after": done.bytes_after,
            "checkpointed": done.checkpointed,
            "seconds": done.seconds,
        }
        summary["run_id"] = ctx.store.write(
            lambda c: runs.record(c, "compact", trigger, started, utc_now(), summary)
        )
        return summary


def scheduled_pass(ctx: Context) -> dict[str, Any]:
    """The scheduler's `retention` job, on its schedule or asked for (its trigger says which)."""
    return run_retention(ctx, trigger=JOB_TRIGGER.get())
