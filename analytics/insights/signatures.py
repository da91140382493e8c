"""Failure signatures: error messages with their variable parts stripped, grouped and counted.

"Timeout after 3021 ms calling req_8fK2a" and "Timeout after 15 ms calling req_Zq91x" are one
problem; counting them apart hides it. A signature is the message after `RULES`, applied in
order in DuckDB (`regexp_replace`, RE2 syntax, patterns passed as parameters):

1. ISO 8601 timestamps (`2026-01-02T10:11:12.5Z`, `2026-01-02 10:11`) -> `<ts>`
2. UUIDs -> `<uuid>`
3. quoted values, `'...'` (after a non-word character, so "can't" stays) and `"..."` -> `<str>`
4. hex ids: `0x...`, and runs of 8 or more hex digits -> `<hex>`
5. numbers at the start of a word (`42`, `3.5`, the 500 of `500ms`) -> `<n>`
6. any remaining word containing a digit (`req_8fK2a`, `model_1739905519876_k3j9x2abq`) -> `<id>`
7. runs of whitespace -> one space, trimmed; the signature is cut at `MAX_SIGNATURE` characters.

Sources: node errors (`nodes[].error`, grouped under their node id) and the run-level
`errors["global"]` (grouped under node "global").
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.history.scope import flow_scope, open_scope

RULES: tuple[tuple[str, str], ...] = (
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?", "<ts>"),
    (r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"(^|\W)'[^']*'", r"\1<str>"),
    (r'"[^"]*"', "<str>"),
    (r"(?i)\b0x[0-9a-f]+\b", "<hex>"),
    (r"(?i)\b[0-9a-f]{8,}\b", "<hex>"),
    (r"\b\d+(?:\.\d+)?", "<n>"),
    (r"\b\w*\d\w*\b", "<id>"),
    (r"\s+", " "),
)
MAX_SIGNATURE = 500
MAX_LIMIT = 1000


def _normalised(expr: str) -> str:
    for _ in RULES:
        expr = f"regexp_replace({expr}, ?, ?, 'g')"
    return f"left(trim({expr}), {MAX_SIGNATURE})"


def _rule_params() -> list[str]:
    return [part for rule in RULES for part in rule]


_SIGNATURES = """
WITH messages AS (
    SELECT n.node_id AS node_id, n.error AS message, created_at
    FROM (SELECT created_at, unnest(nodes) AS n FROM executions WHERE {scope})
    WHERE n.error IS NOT NULL
    UNION ALL
    SELECT 'global', json_extract_string(errors, '$.global'), created_at
    FROM executions
    WHERE {scope} AND json_extract_string(errors, '$.global') IS NOT NULL
),
signed AS (
    SELECT node_id, {signature} AS signature, message, created_at,
        created_at >= ? AS in_range
    FROM messages
),
grouped AS (
    SELECT
        node_id,
        signature,
        count(*) FILTER (WHERE in_range) AS count,
        min(created_at) FILTER (WHERE in_range) AS first_seen,
        max(created_at) FILTER (WHERE in_range) AS last_seen,
        arg_max(message, created_at) FILTER (WHERE in_range) AS example,
        count(*) FILTER (WHERE created_at >= ?) AS last_24h,
        count(*) FILTER (WHERE created_at >= ?) AS last_7d,
        count(*) FILTER (WHERE created_at >= ? AND created_at < ?) AS prev_7d
    FROM signed
    GROUP BY node_id, signature
)
SELECT *,
    CASE
        WHEN last_7d = 0 AND prev_7d = 0 THEN 'quiet'
        WHEN last_7d >= 2 * prev_7d THEN 'rising'
        WHEN 2 * last_7d <= prev_7d THEN 'falling'
        ELSE 'steady'
    END AS trend
FROM grouped
WHERE count > 0
ORDER BY count DESC, last_seen DESC, node_id, signature
LIMIT ?
"""


def failure_signatures(
    ctx: Context,
    viewer: Viewer,
    flow_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> pa.Table:
    """Signatures of the runs the caller sees, most frequent first (at most `limit`).

    `count`, `first_seen`, `last_seen` and `example` (the latest raw message) cover `[start,
    end)`. The trend looks back from `end` (or now), whatever `start` says: `last_24h`,
    `last_7d` and `prev_7d` (the 7 days before those) count occurrences, and `trend` is
    `rising` when last_7d >= 2 x prev_7d (so anything new is rising), `falling` when
    last_7d <= prev_7d / 2 (so anything that stopped is falling), `quiet` when both are 0,
    else `steady`.
    """
    scope = open_scope(ctx, viewer, flow_id, start, end)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    as_of = naive_utc(end) if end is not None else utc_now()
    day, week, fortnight = (as_of - timedelta(days=d) for d in (1, 7, 14))
    # read back far enough for both the range and the trend's 14 days
    reach = None if start is None else min(naive_utc(start), fortnight)
    sql_scope, params = flow_scope(scope.grant, reach, end)
    in_range_from = datetime.min if start is None else naive_utc(start)
    sql = _SIGNATURES.format(scope=sql_scope, signature=_normalised("message"))
    all_params = [*params, *params, *_rule_params(), in_range_from, day, week, fortnight, week, limit]
    table: pa.Table = ctx.store.read(lambda c: c.sql(sql, params=all_params).to_arrow_table())
    return table
