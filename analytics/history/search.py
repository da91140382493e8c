"""Search executions across every flow a caller may read: filters, sort, keyset pages, a total.

Lists read only the narrow typed columns; payloads (inputs, outputs, node results, errors)
are read only when asked for, page by page. Order is total (ties broken by id) so pages are
stable; the cursor names the sort it belongs to, and another sort's cursor is refused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound
from analytics.history.filters import Clause, ExecutionFilter, ready, visible_clause, where
from analytics.history.first_error import first_errors
from analytics.history.pagination import Page, decode_key, encode_key, from_micros, micros
from analytics.history.runs import ROW_COLUMNS, Execution, ExecutionRow, get_execution

_COUNTS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowhistory-count")


class ExecutionSort(StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    SLOWEST = "-execution_time"
    FASTEST = "execution_time"


_ORDER: dict[ExecutionSort, tuple[str, str]] = {
    ExecutionSort.NEWEST: ("created_at", "DESC"),
    ExecutionSort.OLDEST: ("created_at", "ASC"),
    ExecutionSort.SLOWEST: ("execution_time", "DESC"),
    ExecutionSort.FASTEST: ("execution_time", "ASC"),
}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A search hit; `execution` (the full run) only when payloads were asked for, its first
    error (`error_node`, `error_message`) only when errors were."""

    row: ExecutionRow
    execution: Execution | None = None
    error_node: str | None = None
    error_message: str | None = None

    def __getattr__(self, name: str) -> Any:
        """A hit reads as its row (`hit.created_at`): the answer's model reads it directly."""
        if name == "row":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.row, name)


def _key(row: ExecutionRow, column: str) -> int:
    return micros(row.created_at) if column == "created_at" else row.execution_time


def search_executions(
    ctx: Context,
    viewer: Viewer,
    *,
    filter: ExecutionFilter | None = None,
    sort: ExecutionSort = ExecutionSort.NEWEST,
    limit: int | None = None,
    cursor: str | None = None,
    include_payloads: bool = False,
    include_errors: bool = False,
) -> Page[SearchHit]:
    limit = limit or ctx.settings.list_limit_default
    cap = 100 if include_payloads else ctx.settings.list_limit_max
    if not 1 <= limit <= cap:
        raise InvalidInput(f"limit must be between 1 and {cap}", field="limit")
    column, direction = _ORDER[sort]
    base_sql, base_params = _where(ctx, viewer, filter)
    sql, params = base_sql, list(base_params)
    if cursor is not None:
        value, row_id = decode_key(cursor, sort=sort.value)
        key: Any = from_micros(value) if column == "created_at" else value
        op = "<" if direction == "DESC" else ">"
        sql += f" AND ({column} {op} ? OR ({column} = ? AND id {op} ?::UUID))"
        params += [key, key, row_id]
    order = f"ORDER BY {column} {direction}, id {direction}"

    # the total (a count over every match) runs on another cursor while this one reads the
    # page: the page's time hides behind the count's (10M runs: ~16 -> ~12 ms in-process)
    counting = _COUNTS.submit(
        ctx.store.read,
        lambda c: c.execute(f"SELECT count(*) FROM executions WHERE {base_sql}", base_params).fetchall(),
    )
    try:
        rows = ctx.store.read(
            lambda c: c.execute(
                f"SELECT {ROW_COLUMNS} FROM executions WHERE {sql} {order} LIMIT ?", [*params, limit + 1]
            ).fetchall()
        )
    finally:
        wait([counting])  # when the page fails too: a caller may close the store right after
    total = int(counting.result()[0][0])
    found = [ExecutionRow(*r) for r in rows[:limit]]
    errors = first_errors(ctx, found) if include_errors else {}
    items = []
    for r in found:
        detail = None
        if include_payloads:
            try:
                detail = get_execution(ctx, viewer, r.flow_id, r.id)
            except (NotFound, AccessDenied):  # deleted (or its access changed) since the page was read:
                continue  # left out, as a page read a moment later would; the page is not a 404
        first = errors.get(r.id)
        items.append(SearchHit(r, detail, *((first.node_id, first.message) if first else (None, None))))
    next_cursor = None
    if len(rows) > limit:
        last = found[-1]
        next_cursor = encode_key(_key(last, column), last.id, sort=sort.value)
    if cursor is None and next_cursor is None:
        # every match in one page: its own items are the total (the count ran beside the page, on
        # another snapshot, and under writes disagreed with the items answered)
        total = len(items)
    return Page(items, next_cursor, total)


def _where(ctx: Context, viewer: Viewer, filter: ExecutionFilter | None) -> Clause:
    visible = visible_clause(ctx.directory, viewer)
    return where(visible, *ready(ctx.store, filter, visible).clauses())


def count_executions(ctx: Context, viewer: Viewer, *, filter: ExecutionFilter | None = None) -> int:
    sql, params = _where(ctx, viewer, filter)
    return int(
        ctx.store.read(
            lambda c: c.execute(f"SELECT count(*) FROM executions WHERE {sql}", params).fetchall()
        )[0][0]
    )
