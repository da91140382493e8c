"""Which runs a set of policies deletes or trims at a given moment: one SQL query for both the dry
run and the real pass, so what the dry run says is what the pass then does (same state, same
`now`).

The query judges every run of the flows in scope against its flow's effective policy (the
flow's own, else the global one), passed in as parameter lists, never as SQL text. The window
for keep-last-N and the payload check are left out when no policy needs them: on a big store
they are most of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analytics.access.permissions import Viewer, require_flow_access
from analytics.core.clock import naive_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput
from analytics.core.store import Connection, in_snapshot
from analytics.retention.policies import GLOBAL, Policy, StoredPolicy, load_all, validate

DELETE = "delete"
TRIM = "trim"
MAX_IDS = 100_000
PAYLOAD_PRESENT = "(e.inputs IS NOT NULL OR e.outputs IS NOT NULL OR e.node_results IS NOT NULL)"


@dataclass(frozen=True, slots=True)
class FlowPlan:
    flow_id: str
    delete: int
    trim: int
    delete_ids: list[str] = field(default_factory=list)
    trim_ids: list[str] = field(default_factory=list)
    # runs to delete per status: a pass deletes error and aborted runs by `failed_age`, which
    # falls back to max_age_days; the counts let a screen say exactly what goes
    delete_by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    now: datetime
    delete: int
    trim: int
    flows: list[FlowPlan]
    # ids are listed up to `ids_limit` in all (by flow, then oldest first); counts are exact
    ids_limit: int
    ids_truncated: bool


def _cutoff(days: str) -> str:
    return f"($now::TIMESTAMP - to_microseconds(CAST({days} * 86400000000 AS BIGINT)))"


def plan_query(
    policies: dict[str, Policy], now: datetime, flow_ids: list[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """SELECT id, flow_id, created_at, action: every run to delete or trim, nothing else."""
    glob = policies.get(GLOBAL, Policy())
    own = {k: p for k, p in policies.items() if k != GLOBAL}
    every = [glob, *own.values()]
    need_rank = any(p.keep_last is not None for p in every)
    need_payload = any(p.payload_ttl_days is not None for p in every)
    params: dict[str, Any] = {
        "now": now,
        "fp_flow": list(own),
        "fp_age": [p.max_age_days for p in own.values()],
        "fp_failed": [p.failed_age() for p in own.values()],
        "fp_keep": [p.keep_last for p in own.values()],
        "fp_ttl": [p.payload_ttl_days for p in own.values()],
        "g_age": glob.max_age_days,
        "g_failed": glob.failed_age(),
        "g_keep": glob.keep_last,
        "g_ttl": glob.payload_ttl_days,
    }
    scope = "true"
    if flow_ids is not None:
        scope = "e.flow_id IN (SELECT unnest($flows::VARCHAR[]))"
        params["flows"] = flow_ids
    rank = (
        "row_number() OVER (PARTITION BY e.flow_id ORDER BY e.created_at DESC, e.id DESC)"
        if need_rank
        else "0::BIGINT"
    )
    payload = PAYLOAD_PRESENT if need_payload else "false"

    def pick(own_col: str, glob_param: str, sql_type: str) -> str:
        return f"CASE WHEN fp.flow_id IS NULL THEN ${glob_param}::{sql_type} ELSE fp.{own_col} END"

    sql = f"""
    WITH fp AS (
        SELECT unnest($fp_flow::VARCHAR[]) AS flow_id, unnest($fp_age::DOUBLE[]) AS max_age,
               unnest($fp_failed::DOUBLE[]) AS failed_age, unnest($fp_keep::BIGINT[]) AS keep_last,
               unnest($fp_ttl::DOUBLE[]) AS ttl
    ),
    runs AS (
        SELECT e.id, e.flow_id, e.created_at, e.status, {payload} AS has_payload, {rank} AS rn,
               {pick("max_age", "g_age", "DOUBLE")} AS max_age,
               {pick("failed_age", "g_failed", "DOUBLE")} AS failed_age,
               {pick("keep_last", "g_keep", "BIGINT")} AS keep_last,
               {pick("ttl", "g_ttl", "DOUBLE")} AS ttl
        FROM executions e LEFT JOIN fp ON fp.flow_id = e.flow_id
        WHERE {scope}
    ),
    judged AS (
        SELECT id, flow_id, created_at, status,
            coalesce(created_at < {_cutoff("CASE WHEN status = 'success' THEN max_age ELSE failed_age END")}, false)
            OR coalesce(rn > keep_last, false) AS too_old,
            has_payload AND coalesce(created_at < {_cutoff("ttl")}, false) AS too_heavy
        FROM runs
    )
    SELECT j.id, j.flow_id, j.created_at, CASE WHEN j.too_old THEN '{DELETE}' ELSE '{TRIM}' END AS action, j.status
    FROM judged j
    WHERE (j.too_old OR j.too_heavy)
      AND NOT EXISTS (
          -- annotated runs (a note, a tag or a rating on this flow's run) are never touched
          SELECT 1 FROM execution_annotations a WHERE a.execution_id = j.id AND a.flow_id = j.flow_id
          AND (coalesce(a.note, '') <> '' OR len(a.tags) > 0 OR a.rating IS NOT NULL))
    """
    return sql, params


def policies_in_force(
    conn: Connection, candidate: Policy | None = None, candidate_flow: str | None = None
) -> dict[str, Policy]:
    """The stored policies, with a candidate (not saved) in place of one of them."""
    stored: dict[str, StoredPolicy] = load_all(conn)
    policies = {k: s.policy for k, s in stored.items()}
    if candidate is not None:
        policies[candidate_flow or GLOBAL] = candidate
    return policies


def compute(
    conn: Connection,
    policies: dict[str, Policy],
    now: datetime,
    *,
    flow_ids: list[str] | None = None,
    ids_limit: int = 1000,
) -> Plan:
    """The plan as counts per flow and the first `ids_limit` ids; call it in one snapshot."""
    sql, params = plan_query(policies, now, flow_ids)
    counts = conn.execute(
        f"SELECT flow_id, action, status, count(*) FROM ({sql}) GROUP BY ALL ORDER BY flow_id", params
    ).fetchall()
    per_flow: dict[str, dict[str, int]] = {}
    by_status: dict[str, dict[str, int]] = {}
    for fid, action, status, n in counts:
        c = per_flow.setdefault(fid, {DELETE: 0, TRIM: 0})
        c[action] += int(n)
        if action == DELETE:
            by_status.setdefault(fid, {})[status] = int(n)
    ids: dict[tuple[str, str], list[str]] = {}
    if ids_limit > 0 and per_flow:
        listed = conn.execute(
            f"SELECT flow_id, action, id::VARCHAR FROM ({sql}) ORDER BY flow_id, action, created_at, id LIMIT $lim",
            {**params, "lim": ids_limit},
        ).fetchall()
        for fid, action, eid in listed:
            ids.setdefault((fid, action), []).append(eid)
    total_delete = sum(c[DELETE] for c in per_flow.values())
    total_trim = sum(c[TRIM] for c in per_flow.values())
    flows = [
        FlowPlan(
            fid,
            c[DELETE],
            c[TRIM],
            ids.get((fid, DELETE), []),
            ids.get((fid, TRIM), []),
            by_status.get(fid, {}),
        )
        for fid, c in per_flow.items()
    ]
    return Plan(now, total_delete, total_trim, flows, ids_limit, total_delete + total_trim > ids_limit)


def dry_run(
    ctx: Context,
    viewer: Viewer,
    *,
    flow_id: str | None = None,
    candidate: Policy | None = None,
    now: datetime | None = None,
    ids_limit: int = 1000,
) -> Plan:
    """What a retention pass would do now: with the stored policies, or with `candidate` in
    place of the global one (or of `flow_id`'s own). Admins plan every flow; a flow's owner
    plans their flow."""
    if not 0 <= ids_limit <= MAX_IDS:
        raise InvalidInput(f"ids_limit must be between 0 and {MAX_IDS}", field="ids_limit")
    if flow_id is None:
        if not viewer.is_admin:
            raise AccessDenied("Only admins may plan retention across every flow")
        scope = None
    else:
        require_flow_access(ctx.directory, viewer, flow_id, owner=True)
        scope = [flow_id]
    if candidate is not None:
        validate(candidate)
    at = naive_utc(now) if now is not None else utc_now()

    def plan(c: Connection) -> Plan:
        return compute(c, policies_in_force(c, candidate, flow_id), at, flow_ids=scope, ids_limit=ids_limit)

    return ctx.store.read(in_snapshot(plan))
