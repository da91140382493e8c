"""Failure signatures: error messages with their variable parts stripped, grouped and counted.

"Timeout after 3021 ms calling req_8fK2a" and "Timeout after 15 ms calling req_Zq91x" are one
problem; counting them apart hides it. But "gpt-4o-mini" is a name, not a number: folding its
4 (`gpt-<n>o-mini`) makes the signature unreadable. The rules are `normalise`'s, in
analytics/history/error_signature.py: search filters by a signature too.

Sources: node errors (`nodes[].error`, grouped under their node id) and the run-level
`errors["global"]` (grouped under node "global"; a node named "global" has that same error,
counted once). The distinct (message, models) pairs are read first and normalised here, then
joined back in the same snapshot for the counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc, shifted, utc_now
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.core.store import Connection, in_snapshot
from analytics.history.error_signature import GLOBAL_ERROR, NODE_ERROR, RUN_MODELS, normalise
from analytics.history.scope import flow_scope, open_scope

MAX_LIMIT = 1000

_MESSAGES = f"""
SELECT n.node_id AS node_id, n.error AS message, n.model AS models_key, created_at
FROM (SELECT created_at, unnest(nodes) AS n FROM executions WHERE {{scope}})
WHERE {NODE_ERROR}
UNION ALL
SELECT 'global', {GLOBAL_ERROR}, {RUN_MODELS}, created_at
FROM executions
WHERE {{scope}} AND {GLOBAL_ERROR} IS NOT NULL
"""

_SIGNATURES = """
WITH messages AS ({messages}),
names AS (
    SELECT unnest(?::VARCHAR[]) AS message, unnest(?::VARCHAR[]) AS models_key,
        unnest(?::VARCHAR[]) AS signature
),
signed AS (
    SELECT m.node_id, coalesce(s.signature, m.message) AS signature, m.message, m.created_at,
        m.created_at >= ? AS in_range
    FROM messages m LEFT JOIN names s
        ON m.message = s.message AND m.models_key IS NOT DISTINCT FROM s.models_key
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
    # held at year 1 for an `end` in its first fortnight (a 500: OverflowError)
    day, week, fortnight = (shifted(as_of, timedelta(days=-d)) for d in (1, 7, 14))
    # read back far enough for both the range and the trend's 14 days
    reach = None if start is None else min(naive_utc(start), fortnight)
    sql_scope, params = flow_scope(scope.grant, reach, end)
    in_range_from = datetime.min if start is None else naive_utc(start)
    messages = _MESSAGES.format(scope=sql_scope)
    sql = _SIGNATURES.format(messages=messages)

    def read(c: Connection) -> pa.Table:
        pairs = c.execute(
            f"SELECT DISTINCT message, models_key FROM ({messages})", [*params, *params]
        ).fetchall()
        names = [normalise(m, k.split("\n") if k else ()) for m, k in pairs]
        mapping = [[m for m, _ in pairs], [k for _, k in pairs], names]
        all_params = [*params, *params, *mapping, in_range_from, day, week, fortnight, week, limit]
        table: pa.Table = c.sql(sql, params=all_params).to_arrow_table()
        return table

    return ctx.store.read(in_snapshot(read))
