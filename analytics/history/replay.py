"""Run a past execution again: what to run, the runs that replayed it, and the pair compared.

The store does not run flows; the client does. So a replay is what the client needs to run it
again: the run's inputs and the flow definition of the version that ran (a flow may have been
edited since; `flow_versions` keeps every definition by its hash), and the body to POST back
with `replay_of` set. When the version is unknown (a run stored before versions were stamped,
or a version row lost with a deleted and re-created flow) the current definition is given and
`definition_is_current` says so, because it may not be what ran.

`compare_with_replays` answers the question a replay is for, in one call: from an original,
its latest replay; from a replay, its original.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from analytics.access.permissions import Grant, Viewer, require_flow_access
from analytics.core.context import Context
from analytics.core.errors import InvalidInput, NotFound
from analytics.core.store import Connection
from analytics.history.compare import Comparison, compare_executions
from analytics.history.runs import EXECUTION_NOT_FOUND, ExecutionSummary, get_execution

NO_REPLAY = "This execution has no replay and replays no other execution"


@dataclass(frozen=True, slots=True)
class FlowDefinition:
    version: str | None
    nodes: list[Any]
    edges: list[Any]
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReplayPayload:
    execution_id: str
    flow_id: str
    inputs: dict[str, Any] | None
    definition: FlowDefinition
    definition_is_current: bool  # the version that ran is unknown: this is today's definition
    body: dict[str, Any]  # what to POST to the flow's executions, once completed with the outcome


def _definition(ctx: Context, flow_id: str, version: str | None) -> tuple[FlowDefinition, bool]:
    def read(c: Connection) -> list[Any]:
        if version is not None:
            rows = c.execute(
                "SELECT version, nodes, edges, flow_updated_at FROM flow_versions"
                " WHERE flow_id = ? AND version = ?",
                [flow_id, version],
            ).fetchall()
            if rows:
                return [*rows[0], False]
        rows = c.execute(
            "SELECT version, nodes, edges, updated_at FROM flows WHERE id = ?", [flow_id]
        ).fetchall()
        return [*rows[0], True] if rows else []

    found = ctx.store.read(read)
    if not found:  # the flow went between the access check and this read
        raise NotFound("Flow not found")
    ver, nodes, edges, updated_at, current = found
    return FlowDefinition(ver or None, orjson.loads(nodes), orjson.loads(edges), updated_at), current


def replay_payload(ctx: Context, viewer: Viewer, flow_id: str, execution_id: str) -> ReplayPayload:
    """Anyone who may see the run may replay it (saving a run needs only read access)."""
    execution = get_execution(ctx, viewer, flow_id, execution_id)
    definition, current = _definition(ctx, flow_id, execution.flow_version)
    body = {"flow_id": flow_id, "inputs": execution.inputs, "replay_of": execution.id}
    return ReplayPayload(execution.id, flow_id, execution.inputs, definition, current, body)


def _visible(grant: Grant) -> tuple[str, list[Any]]:
    if grant.only_user is None:
        return "flow_id = ?", [grant.flow.id]
    return "flow_id = ? AND user_id = ?", [grant.flow.id, grant.only_user]


def _require_execution(ctx: Context, grant: Grant, execution_id: str) -> tuple[str, str | None]:
    """(id, replay_of) of a run of this flow the caller sees; NotFound otherwise."""
    try:
        exec_id = str(uuid.UUID(execution_id))
    except ValueError:
        raise NotFound(EXECUTION_NOT_FOUND) from None
    where, params = _visible(grant)
    rows = ctx.store.read(
        lambda c: c.execute(
            f"SELECT id::VARCHAR, replay_of::VARCHAR FROM executions WHERE id = ? AND {where}",
            [exec_id, *params],
        ).fetchall()
    )
    if not rows:
        raise NotFound(EXECUTION_NOT_FOUND)
    return rows[0][0], rows[0][1]


def list_replays(
    ctx: Context, viewer: Viewer, flow_id: str, execution_id: str, *, limit: int | None = None
) -> list[ExecutionSummary]:
    """Runs saved with `replay_of` = this run, newest first; a reader sees only their own."""
    limit = limit or ctx.settings.list_limit_default
    if not 1 <= limit <= ctx.settings.list_limit_max:
        raise InvalidInput(f"limit must be between 1 and {ctx.settings.list_limit_max}", field="limit")
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    original, _ = _require_execution(ctx, grant, execution_id)
    where, params = _visible(grant)
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, flow_id, user_id, status, execution_time, created_at FROM executions"
            f" WHERE replay_of = ? AND {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            [original, *params, limit],
        ).fetchall()
    )
    return [ExecutionSummary(*r) for r in rows]


def compare_with_replays(ctx: Context, viewer: Viewer, flow_id: str, execution_id: str) -> Comparison:
    """The original first, then its latest replay the caller may see.

    Given an original: its newest replay. Given a replay with none of its own: its original.
    NotFound when there is neither.
    """
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    exec_id, replay_of = _require_execution(ctx, grant, execution_id)
    latest = list_replays(ctx, viewer, flow_id, exec_id, limit=1)
    if latest:
        return compare_executions(ctx, viewer, [exec_id, latest[0].id])
    if replay_of is not None:
        return compare_executions(ctx, viewer, [replay_of, exec_id])
    raise NotFound(NO_REPLAY)
