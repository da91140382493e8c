"""Stream the runs of a search (or of one flow) as CSV, JSON Lines or Parquet, of any size.

The same filters, sort and row visibility as search (`ExecutionFilter`, `visible_clause`, the
flow scope for one flow); access is checked when the download is asked for, so a refusal is an
error answer, not a broken file. The rows come from one DuckDB query on a cursor of its own
(a download outlives the request thread's cursor, and its one statement is one snapshot),
read as Arrow record batches of `batch_rows` rows, each encoded and handed on before the next
is read: memory holds about one batch, whatever the result's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.access import Viewer
from analytics.batch_formats import JSON_LINE, Format, encode
from analytics.context import Context
from analytics.filters import ExecutionFilter, visible_clause, where
from analytics.scope import open_scope
from analytics.search import ExecutionSort

BATCH_ROWS = 5_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

# The export's executions columns, payloads as JSON text, created_at as UTC.
_COLUMNS = (
    "id::VARCHAR AS id, flow_id, user_id, status, execution_time,"
    " created_at::TIMESTAMPTZ AS created_at,"
    " inputs, CASE WHEN outputs_same THEN node_results ELSE outputs END AS outputs,"
    " node_results, errors, meta, node_count, tokens_in, tokens_out, tokens_estimated, cost,"
    " flow_version, replay_of::VARCHAR AS replay_of"
)


@dataclass(frozen=True, slots=True)
class Download:
    filename: str
    media_type: str
    chunks: Iterator[bytes]


def _select(fmt: Format, where_sql: str, order: str) -> str:
    # CSV holds no lists: the per-node facts go as JSON text there, as real lists elsewhere
    nodes = "to_json(nodes) AS nodes" if fmt is Format.CSV else "nodes"
    sql = f"SELECT {_COLUMNS}, {nodes} FROM executions WHERE {where_sql} {order}"
    if fmt is Format.JSONL:  # DuckDB renders each row, JSON payloads nested as JSON
        sql = f"SELECT to_json(r)::VARCHAR AS {JSON_LINE} FROM ({sql}) r"
    return sql


def _stream(ctx: Context, fmt: Format, sql: str, params: list[Any], batch_rows: int) -> Iterator[bytes]:
    cursor = ctx.store.read(lambda c: c.cursor())
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute("SET enable_progress_bar = false")
        reader = cursor.sql(sql, params=params).to_arrow_reader(batch_rows)
        yield from encode(fmt, reader, reader.schema)
    finally:
        cursor.close()


def download_executions(
    ctx: Context,
    viewer: Viewer,
    fmt: Format,
    *,
    filter: ExecutionFilter | None = None,
    sort: ExecutionSort = ExecutionSort.NEWEST,
    flow_id: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Download:
    """Runs the caller may see that match `filter` (within `flow_id` when given), streamed."""
    clauses = (filter or ExecutionFilter()).clauses()
    if flow_id is not None:
        scope = open_scope(ctx, viewer, flow_id, None, None)  # NotFound, then AccessDenied
        where_sql, params = where((scope.sql, scope.params), *clauses)
    else:
        where_sql, params = where(visible_clause(ctx.directory, viewer), *clauses)
    column, direction = sort.value.lstrip("-"), "DESC" if sort.value.startswith("-") else "ASC"
    sql = _select(fmt, where_sql, f"ORDER BY {column} {direction}, id {direction}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"executions-{_SAFE.sub('_', flow_id)}-{stamp}" if flow_id else f"executions-{stamp}"
    return Download(f"{name}.{fmt.value}", fmt.media_type, _stream(ctx, fmt, sql, params, batch_rows))
