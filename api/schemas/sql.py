"""Ad-hoc SQL request and answer shapes."""

from __future__ import annotations

import base64
import datetime as dt
import io
from decimal import Decimal
from typing import Any, Literal

import orjson
import pyarrow as pa
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from analytics.core.numbers import Count, Number
from analytics.exports.sql_sandbox import SqlResult
from analytics.exports.sql_values import python_columns

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, description="one DuckDB SELECT over the export")
    limit: Count = Field(default=1000, ge=1, description="rows returned at most; capped by the server")
    timeout_s: Number = Field(default=10.0, gt=0, description="the query is stopped past this")
    format: Literal["json", "arrow"] | None = Field(
        default=None, description=f"json, or arrow for an Arrow IPC stream (also: Accept: {ARROW_STREAM})"
    )


class SqlColumnOut(BaseModel):
    name: str
    type: str = Field(description="DuckDB's type name")


class SqlResultOut(BaseModel):
    columns: list[SqlColumnOut]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="the query had more rows than limit")
    elapsed_ms: float


def _plain(value: Any) -> Any:
    """Values orjson does not know: exact decimals as strings, bytes as base64, intervals as
    their months, days and nanoseconds (Arrow's), the rest as text."""
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def sql_result_json(result: SqlResult) -> bytes:
    """Rows as lists (column names may repeat), built column-wise from Arrow; what Python cannot
    hold (a date past year 9999, 'infinity', NaN...) as text (analytics/exports/sql_values.py)."""
    columns = python_columns(result.table)
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    body = {
        "columns": [{"name": c.name, "type": c.type} for c in result.columns],
        "rows": rows,
        "row_count": result.row_count,
        "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 3),
    }
    return orjson.dumps(body, default=_plain, option=orjson.OPT_NON_STR_KEYS)


def result_headers(result: SqlResult) -> dict[str, str]:
    """What the JSON body says besides the rows, for the Arrow answer."""
    return {
        "X-Row-Count": str(result.row_count),
        "X-Truncated": "true" if result.truncated else "false",
        "X-Elapsed-Ms": f"{result.elapsed_ms:.3f}",
    }


def _arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def sql_response(result: SqlResult, format: Literal["json", "arrow"] | None, accept: str) -> Response:
    """JSON, or an Arrow IPC stream when `format` says so or (no format) the Accept header asks."""
    if format == "arrow" or (format is None and ARROW_STREAM in accept):
        return Response(_arrow(result.table), media_type=ARROW_STREAM, headers=result_headers(result))
    return Response(sql_result_json(result), media_type="application/json")
