"""Stream the runs of a search (or of one flow) as CSV, JSON Lines or Parquet, of any size.

The same filters, sort and row visibility as search (`ExecutionFilter`, `visible_clause`, the
flow scope for one flow); access is checked when the download is asked for, so a refusal is an
error answer, not a broken file.

Memory: sorting whole runs would make DuckDB hold (or spill) every payload of the result, so
only the keys are sorted: one query lists the matching runs' (id, created_at) in the asked
order (~40 bytes a run); then the runs are read `batch_rows` at a time by id (a created_at
range per batch lets DuckDB's zone maps skip the rest of the table), each batch encoded and
handed on before the next is read. Both run in one read transaction on a cursor of the
download's own (it outlives the request thread's cursor), so the file is one snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.access.permissions import Viewer
from analytics.core.batch_formats import JSON_LINE, Format, encode
from analytics.core.clock import file_stamp
from analytics.core.context import Context
from analytics.history.filters import Clause, ExecutionFilter, ready, visible_clause, where
from analytics.history.scope import open_scope
from analytics.history.search import ExecutionSort

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
# iso_utc's form: seconds, the microseconds only when there are some, and Z
_RFC3339 = (
    "strftime(created_at, '%Y-%m-%dT%H:%M:%S')"
    " || CASE WHEN epoch_us(created_at) % 1000000 <> 0 THEN strftime(created_at, '.%f') ELSE '' END"
    " || 'Z' AS created_at"
)


@dataclass(frozen=True, slots=True)
class Download:
    filename: str
    media_type: str
    chunks: Iterator[bytes]


def _batch_sql(fmt: Format, selection: str, order: str) -> str:
    """One batch of runs, in the download's order."""
    # CSV holds no lists: the per-node facts go as JSON text there, as real lists elsewhere
    nodes = "to_json(nodes) AS nodes" if fmt is Format.CSV else "nodes"
    sql = f"SELECT {_COLUMNS}, {nodes} FROM executions WHERE {selection} {order}"
    if fmt is Format.JSONL:  # DuckDB renders each row, JSON payloads nested as JSON
        # and a time as RFC 3339 text, as the API writes it (`to_json` wrote "2026-12-08 00:00:00+00")
        sql = f"SELECT to_json(r)::VARCHAR AS {JSON_LINE} FROM (SELECT * REPLACE ({_RFC3339}) FROM ({sql})) r"
    return sql


def _cuts(values: np.ndarray, batch_rows: int) -> Iterator[tuple[int, int]]:
    """Batches of about `batch_rows` sorted keys that never split equal values."""
    start, n = 0, len(values)
    while start < n:
        end = min(start + batch_rows, n)
        while end < n and values[end] == values[end - 1]:
            end += 1
        yield start, end
        start = end


def _stream(
    ctx: Context, fmt: Format, where_sql: str, params: list[Any], column: str, order: str, batch_rows: int
) -> Iterator[bytes]:
    """Sorted by created_at (the store's own order, so zone maps prune), a batch is a created_at
    range with the filters again; sorted by execution_time, a batch is a list of ids."""
    by_time = column == "created_at"
    # a cursor of its own, which the store's file swap (retention) waits for instead of closing
    with ctx.store.stream() as cursor:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute("SET enable_progress_bar = false")
        cursor.execute("BEGIN TRANSACTION")  # the keys and every batch: one snapshot
        keys = cursor.sql(
            f"SELECT id::VARCHAR AS id, created_at FROM executions WHERE {where_sql} {order}", params=params
        ).to_arrow_table()
        if by_time:
            sql = _batch_sql(fmt, f"({where_sql}) AND created_at BETWEEN ? AND ?", order)
            empty = [*params, None, None]
        else:
            sql = _batch_sql(fmt, "created_at BETWEEN ? AND ? AND id IN (SELECT unnest(?::UUID[]))", order)
            empty = [None, None, []]
        schema = cursor.sql(sql, params=empty).to_arrow_table().schema  # no rows: the columns
        times = keys.column("created_at").to_numpy()

        def batches() -> Iterator[pa.RecordBatch]:
            for start, end in _cuts(times if by_time else np.arange(len(times)), batch_rows):
                lo, hi = pc.min_max(keys.column("created_at").slice(start, end - start)).values()
                bounds = [lo.as_py(), hi.as_py()]
                args = [*params, *bounds] if by_time else [*bounds, keys.column("id")[start:end].to_pylist()]
                yield from cursor.sql(sql, params=args).to_arrow_table().to_batches()

        yield from encode(fmt, batches(), schema)


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
    if flow_id is not None:
        scope = open_scope(ctx, viewer, flow_id, None, None)  # NotFound, then AccessDenied
        visible: Clause = (scope.sql, scope.params)
    else:
        visible = visible_clause(ctx.directory, viewer)
    where_sql, params = where(visible, *ready(ctx.store, filter, visible).clauses())
    column, direction = sort.value.lstrip("-"), "DESC" if sort.value.startswith("-") else "ASC"
    order = f"ORDER BY {column} {direction}, id {direction}"
    stamp = file_stamp()
    name = f"executions-{_SAFE.sub('_', flow_id)}-{stamp}" if flow_id else f"executions-{stamp}"
    return Download(
        f"{name}.{fmt.value}", fmt.media_type, _stream(ctx, fmt, where_sql, params, column, order, batch_rows)
    )
