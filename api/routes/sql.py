"""Ad-hoc SQL over the Parquet export, for admins: JSON or an Arrow IPC stream."""

from __future__ import annotations

import io

import pyarrow as pa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from analytics.core.errors import InvalidInput
from analytics.exports import sql_sandbox
from api.dependencies import AdminUser, Ctx
from api.json_body import JsonRoute
from api.schemas.sql import ARROW_STREAM, SqlQuery, SqlResultOut, result_headers, sql_result_json

router = APIRouter(prefix="/api/v1", tags=["sql"], route_class=JsonRoute)


def _arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@router.post(
    "/sql",
    response_model=SqlResultOut,
    responses={200: {"content": {ARROW_STREAM: {}}}, 400: {"description": "refused, with DuckDB's reason"}},
)
def run_sql(query: SqlQuery, request: Request, _: AdminUser, ctx: Ctx) -> Response:
    """Run one SELECT over the export in a fresh read-only DuckDB in a worker process, with time,
    memory and row limits: past them a 422 (time) or 413 (memory), the server unharmed."""
    settings = ctx.settings
    if query.limit > settings.sql_max_rows:
        raise InvalidInput(f"limit must be at most {settings.sql_max_rows}", field="limit")
    if query.timeout_s > settings.sql_max_timeout_s:
        raise InvalidInput(f"timeout_s must be at most {settings.sql_max_timeout_s:g}", field="timeout_s")
    try:
        result = sql_sandbox.run_sql(
            sql_sandbox.export_root(settings),
            query.sql,
            limit=query.limit,
            timeout_s=query.timeout_s,
            limits=sql_sandbox.limits_from(settings),
        )
    except sql_sandbox.SqlRefused as exc:  # a refusal is the caller's SQL: 400 with DuckDB's reason
        return JSONResponse({"detail": exc.detail}, status_code=400)
    wants_arrow = query.format == "arrow" or (
        query.format is None and ARROW_STREAM in request.headers.get("accept", "")
    )
    if wants_arrow:
        return Response(_arrow(result.table), media_type=ARROW_STREAM, headers=result_headers(result))
    return Response(sql_result_json(result), media_type="application/json")
