"""Ad-hoc SQL over the Parquet export, for admins: JSON or an Arrow IPC stream."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from analytics.exports import sql_sandbox
from api.dependencies import AdminUser, Ctx
from api.json_body import JsonRoute
from api.schemas.sql import ARROW_STREAM, SqlQuery, SqlResultOut, sql_response

router = APIRouter(prefix="/api/v1", tags=["sql"], route_class=JsonRoute)


@router.post(
    "/sql",
    response_model=SqlResultOut,
    responses={200: {"content": {ARROW_STREAM: {}}}, 400: {"description": "refused, with DuckDB's reason"}},
)
def run_sql(query: SqlQuery, request: Request, _: AdminUser, ctx: Ctx) -> Response:
    """Run one SELECT over the export in a fresh read-only DuckDB in a worker process, with time,
    memory and row limits: past them a 422 (time) or 413 (memory), the server unharmed."""
    result = sql_sandbox.run_console_query(
        ctx.settings, query.sql, limit=query.limit, timeout_s=query.timeout_s
    )
    return sql_response(result, query.format, request.headers.get("accept", ""))
