"""The execution history of a flow: save is in ingest; here list, get, stats and delete.

Every function checks flow access first, in the contract's order (flow exists, then access,
then the execution), and applies row visibility from the Grant, so a reader who is not owner,
admin or write-grantee sees only their own executions everywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from analytics.access.permissions import Viewer, require_flow_access
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, InvalidInput, NotFound
from analytics.core.store import Connection
from analytics.history import changes
from analytics.history.counters import Stats, whole_ms_mean
from analytics.history.filters import ExecutionFilter, ready, where
from analytics.history.pagination import Page, Position, decode_cursor, encode_cursor
from analytics.history.scope import flow_scope

EXECUTION_NOT_FOUND = "Execution not found"
EXECUTION_NOT_IN_FLOW = "Execution not found for this flow"
_ORDER = "ORDER BY created_at DESC, id DESC"
_SUMMARY = "id::VARCHAR, flow_id, user_id, status, execution_time, created_at"
KEEP_LAST_DEFAULT = 50  # the cleanup endpoint's `keep` when none is given, as the peer's
MAX_PAGE = 10_000_000  # 600M rows deep at 60 a page; beyond it OFFSET would overflow int64 anyway


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    id: str
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExecutionRow(ExecutionSummary):
    """A run's summary with its analytics columns: what search hits and compared runs show."""

    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    flow_version: str | None
    replay_of: str | None


ROW_COLUMNS = (
    "id::VARCHAR, flow_id, user_id, status, execution_time, created_at,"
    " tokens_in, tokens_out, tokens_estimated, cost, flow_version, replay_of::VARCHAR"
)


@dataclass(frozen=True, slots=True)
class Annotation:
    """Notes, tags and a rating on a run (annotations.py writes them; the detail shows them)."""

    execution_id: str
    flow_id: str
    note: str | None
    tags: list[str]
    rating: int | None
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    flow_id: str
    user_id: str
    status: str
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    node_results: dict[str, Any] | None
    errors: dict[str, Any] | None
    execution_time: int
    created_at: datetime
    meta: dict[str, Any]
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_estimated: bool = False
    cost: float | None = None
    flow_version: str | None = None
    replay_of: str | None = None
    annotation: Annotation | None = None
    # per-node facts (node_id, node_type, model, status, duration_ms, tokens, cost, error), as
    # stored at ingest
    nodes: list[dict[str, Any]] | None = None


def list_executions_page(
    ctx: Context, viewer: Viewer, flow_id: str, *, page: int = 1, page_size: int | None = None
) -> list[ExecutionSummary]:
    """The contract's `?page=N` list: 1-based pages, newest first, ties broken by id."""
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"page must be between 1 and {MAX_PAGE}", field="page")
    size = page_size or ctx.settings.page_size
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    where, params = flow_scope(grant)
    version = ctx.counters.version(flow_id)  # read before the query: a change after it voids both
    key = (flow_id, grant.only_user, size)
    start = None if page == 1 else ctx.pages.get((*key, page), version)
    if page == 1 or start is not None:
        rows = _after(ctx, where, params, start, size)
    else:
        # OFFSET, one row early: that row is where this page starts, for next time
        rows = ctx.store.read(
            lambda c: c.execute(
                f"SELECT {_SUMMARY} FROM executions WHERE {where} {_ORDER} LIMIT ? OFFSET ?",
                [*params, size + 1, (page - 1) * size - 1],
            ).fetchall()
        )
        if not rows:
            return []
        ctx.pages.put((*key, page), version, Position(rows[0][5], rows[0][0]))
        rows = rows[1:]
    if len(rows) == size:
        ctx.pages.put((*key, page + 1), version, Position(rows[-1][5], rows[-1][0]))
    return [ExecutionSummary(*r) for r in rows]


def _after(ctx: Context, where: str, params: list[Any], start: Position | None, limit: int) -> list[Any]:
    """Rows after a keyset position (or from the newest), newest first."""
    if start is not None:
        where += " AND (created_at < ? OR (created_at = ? AND id < ?::UUID))"
        params = [*params, start.created_at, start.created_at, start.id]
    return ctx.store.read(
        lambda c: c.execute(
            f"SELECT {_SUMMARY} FROM executions WHERE {where} {_ORDER} LIMIT ?", [*params, limit]
        ).fetchall()
    )


def list_executions(
    ctx: Context, viewer: Viewer, flow_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[ExecutionSummary]:
    """Keyset pages with a total; stable while new runs arrive."""
    limit = limit or ctx.settings.list_limit_default
    if not 1 <= limit <= ctx.settings.list_limit_max:
        raise InvalidInput(f"limit must be between 1 and {ctx.settings.list_limit_max}", field="limit")
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    where, params = flow_scope(grant)
    rows = _after(ctx, where, params, decode_cursor(cursor) if cursor else None, limit + 1)
    items = [ExecutionSummary(*r) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
    total = ctx.counters.stats(flow_id, only_user=grant.only_user).total_executions
    if cursor is None and not more:
        # the whole list in one page: its own rows are the total (the counters are read a moment
        # after the page: under writes they answered 300 rows with a total of 0)
        total = len(items)
    return Page(items, next_cursor, total)


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _elsewhere(ctx: Context, viewer: Viewer, flow_id: str, user_id: str) -> str:
    """The 404 detail for a run that is under another flow: the peer's "not found for this
    flow" only to a caller who may read the run where it is; to anyone else it does not exist
    (else its id would tell of a flow the caller cannot see)."""
    try:
        grant = require_flow_access(ctx.directory, viewer, flow_id)
    except FlowHistoryError:
        return EXECUTION_NOT_FOUND
    if grant.only_user is not None and user_id != grant.only_user:
        return EXECUTION_NOT_FOUND
    return EXECUTION_NOT_IN_FLOW


def get_execution(ctx: Context, viewer: Viewer, flow_id: str, execution_id: str) -> Execution:
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    exec_id = _uuid_or_none(execution_id)
    if exec_id is None:
        raise NotFound(EXECUTION_NOT_FOUND)
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, flow_id, user_id, status, inputs, outputs, outputs_same, node_results,"
            " errors, execution_time, created_at, meta, tokens_in, tokens_out, tokens_estimated, cost,"
            " flow_version, replay_of::VARCHAR, nodes FROM executions WHERE id = ?",
            [exec_id],
        ).fetchall()
    )
    if not rows:
        raise NotFound(EXECUTION_NOT_FOUND)
    eid, fid, uid, status, inputs, outputs, same, node_results, errors, ms, created, meta, *rest = rows[0]
    tokens_in, tokens_out, estimated, cost, version, replay_of, node_facts = rest
    if fid != flow_id:
        raise NotFound(_elsewhere(ctx, viewer, fid, uid))
    if grant.only_user is not None and uid != grant.only_user:
        raise NotFound(EXECUTION_NOT_FOUND)  # another user's run: its existence is not ours to tell
    annotation = _annotation(ctx, eid, fid) if eid in ctx.annotated else None
    nodes = _loads(node_results)
    return Execution(
        id=eid,
        flow_id=fid,
        user_id=uid,
        status=status,
        inputs=_loads(inputs),
        outputs=nodes if same else _loads(outputs),
        node_results=nodes,
        errors=_loads(errors),
        execution_time=ms,
        created_at=created,
        meta=_loads(meta) or {},
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_estimated=estimated,
        cost=cost,
        flow_version=version,
        replay_of=replay_of,
        annotation=annotation,
        nodes=node_facts,
    )


def _annotation(ctx: Context, execution_id: str, flow_id: str) -> Annotation | None:
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT note, tags, rating, updated_by, updated_at FROM execution_annotations"
            " WHERE execution_id = ? AND flow_id = ?",
            [execution_id, flow_id],
        ).fetchall()
    )
    if not rows:
        return None
    note, tags, rating, by, at = rows[0]
    return Annotation(execution_id, flow_id, note, list(tags), rating, by, at)


def get_stats(ctx: Context, viewer: Viewer, flow_id: str, filter: ExecutionFilter | None = None) -> Stats:
    """One consistent snapshot: the in-memory counters (exact; see counters.py) when no filter is
    given, else one query over the flow's runs the caller sees that the filter keeps.

    The filter's own `flow_id` is ignored: the path names the flow. The average is rounded to
    whole milliseconds as the counters round it, so a filter that keeps every run answers the same.
    """
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    narrowed = filter.model_copy(update={"flow_id": None}) if filter is not None else None
    clauses = ready(ctx.store, narrowed, flow_scope(grant)).clauses()
    if not clauses:
        return ctx.counters.stats(flow_id, only_user=grant.only_user)
    sql, params = where(flow_scope(grant), *clauses)
    total, success, error, aborted, time_sum, last = ctx.store.read(
        lambda c: c.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'),"
            " count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'aborted'),"
            f" coalesce(sum(execution_time), 0), max(created_at) FROM executions WHERE {sql}",
            params,
        ).fetchall()
    )[0]
    avg = whole_ms_mean(int(time_sum), int(total))
    return Stats(int(total), int(success), int(error), int(aborted), avg, last)


def _delete_ids(conn: Connection, ids: list[str]) -> int:
    if not ids:
        return 0
    changes.invalidate(conn, "id IN (SELECT unnest(?::UUID[]))", [ids])
    conn.execute("DELETE FROM execution_annotations WHERE execution_id IN (SELECT unnest(?::UUID[]))", [ids])
    conn.execute("DELETE FROM executions WHERE id IN (SELECT unnest(?::UUID[]))", [ids])
    return len(ids)


def _write_flow(ctx: Context, flow_id: str, fn: Any) -> Any:
    """A delete in one flow; the flow's counters are rebuilt from the table as it left them."""
    return ctx.counters.write_recounting(ctx.store, fn, lambda _: [flow_id], frees_space=True)


def delete_execution(ctx: Context, viewer: Viewer, flow_id: str, execution_id: str) -> None:
    require_flow_access(ctx.directory, viewer, flow_id, write=True)
    exec_id = _uuid_or_none(execution_id)
    if exec_id is None:
        raise NotFound(EXECUTION_NOT_FOUND)

    def delete(c: Connection) -> tuple[str, str] | None:
        """None when deleted, else where the run is: ("", "") when nowhere."""
        found = c.execute("SELECT flow_id, user_id FROM executions WHERE id = ?", [exec_id]).fetchall()
        if not found:
            return ("", "")
        if found[0][0] != flow_id:
            return found[0]
        _delete_ids(c, [exec_id])
        return None

    elsewhere = _write_flow(ctx, flow_id, delete)
    if elsewhere == ("", ""):
        raise NotFound(EXECUTION_NOT_FOUND)
    if elsewhere is not None:
        raise NotFound(_elsewhere(ctx, viewer, *elsewhere))


def delete_executions(ctx: Context, viewer: Viewer, flow_id: str) -> int:
    """Delete every execution of the flow; answers how many went (0 is fine)."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)

    def delete(c: Connection) -> int:
        changes.invalidate(c, "flow_id = ?", [flow_id])
        c.execute("DELETE FROM execution_annotations WHERE flow_id = ?", [flow_id])
        return len(c.execute("DELETE FROM executions WHERE flow_id = ? RETURNING 1", [flow_id]).fetchall())

    return int(_write_flow(ctx, flow_id, delete))


@dataclass(frozen=True, slots=True)
class Cleanup:
    deleted: int
    kept: int


def keep_last_executions(
    ctx: Context, viewer: Viewer, flow_id: str, keep: int = KEEP_LAST_DEFAULT
) -> Cleanup:
    """Keep the flow's newest `keep` runs (owner, admin or write-grantee); says what is left."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)
    deleted = delete_old_executions_by_flow_id(ctx, flow_id, keep)
    return Cleanup(deleted, ctx.counters.stats(flow_id).total_executions)


def delete_old_executions_by_flow_id(ctx: Context, flow_id: str, keep_count: int = 50) -> int:
    """Keep exactly the newest `keep_count` runs by (created_at, id); ties cannot break it.

    The peer kept N+1 rows plus every tie at the boundary. Returns how many were deleted.
    A flow id that names no flow is refused rather than answered 0: it is a typo, not a no-op.
    """
    if ctx.directory.flow(flow_id) is None:
        raise NotFound(f"unknown flow {flow_id}: no flow has this id; nothing deleted")
    if keep_count < 0:
        raise InvalidInput("keep_count must be 0 or more", field="keep_count")
    keep_count = min(keep_count, 2**62)  # "keep more than can exist" keeps everything

    def delete(c: Connection) -> int:
        ids = [
            r[0]
            for r in c.execute(
                f"SELECT id::VARCHAR FROM executions WHERE flow_id = ? {_ORDER} OFFSET ?",
                [flow_id, keep_count],
            ).fetchall()
        ]
        return _delete_ids(c, ids)

    return int(_write_flow(ctx, flow_id, delete))
