"""The runs of one flow a caller sees, as SQL: where every per-flow insight starts.

One flow, the caller's row visibility (a reader who is not owner, admin or write-grantee sees
only their own runs) and an optional `[start, end)` range. Breakdown, signatures, reliability,
regressions and anomalies all open their scope here, access checked first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.access.permissions import Grant, Viewer, require_flow_access
from analytics.core.clock import naive_utc
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.history.filters import Clause, where


@dataclass(frozen=True, slots=True)
class Scope:
    """A flow the caller may read, and the runs of it they see, as SQL."""

    grant: Grant
    sql: str
    params: list[Any]


def flow_scope(grant: Grant, start: datetime | None = None, end: datetime | None = None) -> Clause:
    """Runs of the grant's flow this caller sees, created in `[start, end)` (either side open).

    Works on `executions` and on `execution_nodes`: both have flow_id, user_id, created_at.
    """
    clauses: list[Clause] = [("flow_id = ?", [grant.flow.id])]
    if grant.only_user is not None:
        clauses.append(("user_id = ?", [grant.only_user]))
    if start is not None:
        clauses.append(("created_at >= ?", [naive_utc(start)]))
    if end is not None:
        clauses.append(("created_at < ?", [naive_utc(end)]))
    return where(*clauses)


def check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and naive_utc(start) >= naive_utc(end):
        raise InvalidInput("start must be earlier than end", field="start")


def may_read(ctx: Context, viewer: Viewer, flow_id: str) -> None:
    """The contract's order on every execution route, asked before the route reads its query or
    body: the flow exists (NotFound), the caller may read it (AccessDenied). A stranger's `?page=0`
    or a missing flow's bad `start` was a 422 where the same request, well formed, was a 403 or
    404. Write access, where a route needs it, is checked after."""
    require_flow_access(ctx.directory, viewer, flow_id)


def open_scope(
    ctx: Context, viewer: Viewer, flow_id: str, start: datetime | None, end: datetime | None
) -> Scope:
    """Access first (NotFound, then AccessDenied), then the range, then the clause."""
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    check_range(start, end)
    sql, params = flow_scope(grant, start, end)
    return Scope(grant, sql, params)
