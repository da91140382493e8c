"""Bring archived runs back: a time range, optionally one flow, from the Parquet archive.

Runs whose id is already in the store are skipped; a stored run whose payload was trimmed gets
it back from the archive (its row is otherwise left as it is). Runs of flows that no longer
exist, or whose id now names another owner's flow, are skipped and counted. An id archived more
than once (trimmed, later deleted; or restored and archived again) comes back as it was when last
archived, with its payload: the columns a trim empties (`_PAYLOAD`) from the newest copy that
has them, every other column (cost, nodes, tokens, errors, meta, the owner) from the newest copy,
so a cost recomputed after the trim is not lost. Everything happens in one writer transaction;
afterwards the counters of the flows that got runs back are rebuilt.

A restored run is judged by the policies like any other: if it is older than its flow's
policy allows, the next pass removes it again (and archives it again). Give the flow a policy
that keeps it first.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from analytics.core.clock import iso_utc, naive_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.core.store import Connection
from analytics.history import changes
from analytics.retention import archive, runs

_HAS_PAYLOAD = "(s.inputs IS NOT NULL OR s.outputs IS NOT NULL OR s.node_results IS NOT NULL)"
# what a trim empties (apply.py: NULL, and `outputs_same` false): a copy's payload goes as a whole
_PAYLOAD = ("inputs", "outputs", "outputs_same", "node_results")
# the copies of one id, newest first: by the pass's time; a delete before a trim of the same time
# (a run is trimmed, then deleted; only a restore brings it back to be trimmed again)
_NEWEST = "archived_at DESC, coalesce(archive_reason = 'delete', false) DESC"
# the archived run's flow is the flow `f` that has its id now: the same owner as when it was
# archived (Open WebUI re-created the id for another user, or changed its owner: another flow,
# whose owner must never get the old runs). An archive written before `flow_owner` was kept
# has none: there the flow must have existed when the run was made.
_SAME_FLOW = "coalesce(s.flow_owner = f.user_id, f.created_at <= s.created_at)"


def _refill(e: str) -> str:
    """The archived copy `s` (with its flow now, `f`) is the stored run `e` emptied by a trim:
    archived last by a trim (after a pass's delete the id may be posted again), in the same flow
    of the same owner, made at the same time by the same user with the same status, time and
    errors (a trim keeps them), and empty now. An id posted again, to another user's flow or
    without a payload, was given the old run's prompts."""
    return f"""({_HAS_PAYLOAD} AND coalesce(s.archive_reason, 'trim') = 'trim'
        AND {e}.flow_id = s.flow_id AND {e}.created_at = s.created_at
        AND {e}.user_id IS NOT DISTINCT FROM s.user_id AND {e}.status = s.status
        AND {e}.execution_time = s.execution_time AND {e}.errors IS NOT DISTINCT FROM s.errors
        AND f.id IS NOT NULL AND {_SAME_FLOW}
        AND {e}.inputs IS NULL AND {e}.outputs IS NULL AND {e}.node_results IS NULL)"""


def _with_owner_and_shared_outputs(conn: Connection) -> None:
    """`restore_src` as the store keeps runs: `outputs` NULL where it is node_results' copy (the
    archive writes it out), and a `flow_owner` column even when no file read has one."""
    have = {r[0] for r in conn.execute("SELECT name FROM pragma_table_info('restore_src')").fetchall()}
    if "flow_owner" not in have:
        conn.execute("ALTER TABLE restore_src ADD COLUMN flow_owner VARCHAR")
    conn.execute("UPDATE restore_src SET outputs = NULL WHERE outputs_same")


def restore(
    ctx: Context,
    *,
    start: datetime,
    end: datetime,
    flow_id: str | None = None,
    trigger: str = "manual",
    progress: runs.Progress | None = None,
) -> dict[str, Any]:
    """Restore archived runs created in [start, end) (UTC)."""
    start, end = naive_utc(start), naive_utc(end)
    if end <= start:
        raise InvalidInput("end must be after start", field="end")
    report = progress or runs.quiet
    root = archive.archive_root(ctx.settings)
    files = [str(p) for p in archive.files_between(root, start, end)]
    with runs.exclusive("restore"):
        started = utc_now()
        clock = time.monotonic()
        try:
            summary: dict[str, Any] = ctx.counters.write_recounting(
                ctx.store,
                lambda c: _restore(c, files, start, end, flow_id, report),
                lambda s: s["flow_ids"],
            )
        except Exception as exc:
            runs.log_failure(ctx, "restore", trigger, started, exc)
            raise
        summary.pop("flow_ids")
        summary.update(
            start=iso_utc(start),
            end=iso_utc(end),
            flow_id=flow_id,
            seconds=round(time.monotonic() - clock, 3),
        )
        summary["run_id"] = ctx.store.write(
            lambda c: runs.record(c, "restore", trigger, started, utc_now(), summary)
        )
        return summary


def _restore(
    conn: Connection,
    files: list[str],
    start: datetime,
    end: datetime,
    flow_id: str | None,
    report: runs.Progress,
) -> dict[str, Any]:
    empty = {
        "files": 0,
        "restored": 0,
        "refilled": 0,
        "already_present": 0,
        "unknown_flow": 0,
        "other_owner": 0,
        "flow_ids": [],
    }
    if not files:
        return empty
    report("read", 0, len(files))
    where = "created_at >= $start AND created_at < $end"
    params: dict[str, Any] = {"files": files, "start": start, "end": end}
    if flow_id is not None:
        where += " AND flow_id = $flow"
        params["flow"] = flow_id
    payload = ", ".join(f'p."{name}"' for name in _PAYLOAD)
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE restore_src AS
        WITH copies AS (
            SELECT *, (inputs IS NOT NULL OR outputs IS NOT NULL OR node_results IS NOT NULL) AS _full
            FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
            WHERE {where}
        ), ranked AS (
            SELECT *,
                   row_number() OVER (PARTITION BY id ORDER BY {_NEWEST}, _full DESC) AS _newest,
                   row_number() OVER (PARTITION BY id ORDER BY _full DESC, {_NEWEST}) AS _fullest
            FROM copies
        )
        SELECT n.* EXCLUDE (_full, _newest, _fullest, {", ".join(_PAYLOAD)}), {payload}
        FROM ranked n JOIN ranked p ON p.id = n.id AND p._fullest = 1
        WHERE n._newest = 1
        """,
        params,
    )
    report("read", len(files), len(files))
    _with_owner_and_shared_outputs(conn)
    present, unknown, reused, refill = conn.execute(
        f"""
        SELECT count(*) FILTER (WHERE e.id IS NOT NULL AND NOT coalesce({_refill("e")}, false)),  -- a refill is not "already there"
               count(*) FILTER (WHERE e.id IS NULL AND f.id IS NULL),
               count(*) FILTER (WHERE e.id IS NULL AND f.id IS NOT NULL AND NOT ({_SAME_FLOW})),
               count(*) FILTER (WHERE e.id IS NOT NULL AND {_refill("e")})
        FROM restore_src s
        LEFT JOIN executions e ON e.id = s.id::UUID
        LEFT JOIN flows f ON f.id = s.flow_id
        """
    ).fetchall()[0]
    report("restore", 0, 0)
    if refill:
        conn.execute(
            f"""
            UPDATE executions SET inputs = s.inputs, outputs = s.outputs, outputs_same = s.outputs_same,
                   node_results = s.node_results
            FROM restore_src s LEFT JOIN flows f ON f.id = s.flow_id
            WHERE executions.id = s.id::UUID AND {_refill("executions")}
            """
        )
    cols = ", ".join(f's."{name}"' for name, _ in archive.executions_columns(conn))
    wanted = (
        "s.id::UUID NOT IN (SELECT id FROM executions)"
        f" AND EXISTS (SELECT 1 FROM flows f WHERE f.id = s.flow_id AND {_SAME_FLOW})"
    )
    flow_ids = [
        r[0] for r in conn.execute(f"SELECT DISTINCT flow_id FROM restore_src s WHERE {wanted}").fetchall()
    ]
    inserted = conn.execute(
        f"INSERT INTO executions BY NAME SELECT {cols} FROM restore_src s WHERE {wanted}"
        " ORDER BY s.flow_id, s.created_at, s.id"
    ).fetchall()
    restored = int(inserted[0][0]) if inserted else 0
    if restored or refill:  # days already rolled up get runs (or payloads) back: rebuild them
        changes.invalidate(conn, "id IN (SELECT s.id::UUID FROM restore_src s)", [])
    conn.execute("DROP TABLE restore_src")
    report("restore", restored, restored)
    return {
        "files": len(files),
        "restored": restored,
        "refilled": int(refill),
        "already_present": int(present),
        "unknown_flow": int(unknown),
        "other_owner": int(reused),
        "flow_ids": sorted(flow_ids),
    }
