"""Failure signatures: error messages with their variable parts stripped, grouped and counted.

"Timeout after 3021 ms calling req_8fK2a" and "Timeout after 15 ms calling req_Zq91x" are one
problem; counting them apart hides it. But "gpt-4o-mini" is a name, not a number: folding its
4 (`gpt-<n>o-mini`) makes the signature unreadable. A signature is the message after these
steps (`normalise`, in Python: the identifier test needs more than RE2 can say):

1. the node's own model (`nodes[].model`; for a run-level error, any model of the run's nodes),
   as a whole word -> `<model>`, so one error of a node is one signature whichever model it ran
2. ISO 8601 timestamps (`2026-01-02T10:11:12.5Z`, `2026-01-02 10:11`) -> `<ts>`
3. UUIDs -> `<uuid>`
4. quoted values, `'...'` (after a non-word character, so "can't" stays) and `"..."` -> `<str>`
5. identifiers are kept whole: a word joined by `-`, `.`, `:` or `/` (`gpt-4o-mini`,
   `claude-3-5-sonnet-20241022`, `llama3.1:8b`, `HTTP/1.1`) with a part that starts with two letters
   and no part that looks like an id (5+ digits other than a yyyymmdd date, letters and digits
   alternating 3+ times as in `8fK2a`, 8+ hex digits). Every other word goes through 6-8:
6. hex ids: `0x...`, and runs of 8 or more hex digits -> `<hex>`
7. numbers at the start of a word (`42`, `3.5`, the 500 of `500ms`) -> `<n>`
8. any remaining word containing a digit (`req_8fK2a`, `model_1739905519876_k3j9x2abq`) -> `<id>`
9. runs of whitespace -> one space, trimmed; the signature is cut at `MAX_SIGNATURE` characters.

A short joined word with a number (`req-42`) is therefore kept as an identifier.

Sources: node errors (`nodes[].error`, grouped under their node id) and the run-level
`errors["global"]` (grouped under node "global"). The distinct (message, models) pairs are read
first and normalised here, then joined back in the same snapshot for the counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise

import pyarrow as pa

from analytics.access.permissions import Viewer
from analytics.core.clock import naive_utc, shifted, utc_now
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.core.store import Connection, in_snapshot
from analytics.history.scope import flow_scope, open_scope

_TS = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_UUID = re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_SINGLE = re.compile(r"(^|\W)'[^']*'")
_DOUBLE = re.compile(r'"[^"]*"')
_WORD = re.compile(r"\w+(?:[.:/-]+\w+)*")
_PARTS = re.compile(r"[._:/-]+")
_JOINED = re.compile(r"\w[.:/-]+\w")
_LETTERS = re.compile(r"[A-Za-z]{2,}[A-Za-z0-9]*")
_DATE = re.compile(r"(?:19|20)\d{6}")
_HEX = re.compile(r"(?i)[0-9a-f]{8,}")
_FOLDS = (
    (re.compile(r"(?i)\b0x[0-9a-f]+\b"), "<hex>"),
    # a hex id holds a letter: 8 digits and more are a number, as 7 are (else "after 9999999 ms"
    # and "after 10000000 ms" were two signatures)
    (re.compile(r"(?i)\b(?=[0-9]*[a-f])[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\b\w*\d\w*\b"), "<id>"),
)
_SPACE = re.compile(r"\s+")
MAX_SIGNATURE = 500
MAX_LIMIT = 1000


def _id_like(part: str) -> bool:
    """5+ digits (not a yyyymmdd date), 8+ hex digits, or letters and digits alternating
    three times or more (`8fK2a`; `llama3`, `gpt4o` and `405b` alternate less)."""
    digits = sum(c.isdigit() for c in part)
    if digits == len(part):
        return digits >= 5 and not _DATE.fullmatch(part)
    switches = sum(a.isdigit() != b.isdigit() for a, b in pairwise(part))
    return digits >= 5 or switches >= 3 or bool(_HEX.fullmatch(part))


def _identifier(word: str) -> bool:
    """A name to keep whole (`gpt-4o-mini`), not an id to fold (`order-12345`, `req_8fK2a`)."""
    parts = [p for p in _PARTS.split(word) if p]
    return (
        _JOINED.search(word) is not None
        and any(_LETTERS.fullmatch(p) for p in parts)
        and not any(_id_like(p) for p in parts)
    )


def _fold_word(m: re.Match[str]) -> str:
    word = m.group(0)
    if word.startswith("<") or _identifier(word):
        return word
    for pattern, repl in _FOLDS:
        word = pattern.sub(repl, word)
    return word


def normalise(message: str, models: Sequence[str] = ()) -> str:
    """The signature of one message; `models` are folded to `<model>` where they stand whole."""
    for model in sorted({m for m in models if m}, key=len, reverse=True):
        message = re.sub(rf"(?<![\w.:/-]){re.escape(model)}(?![\w/-]|[.:]\w)", "<model>", message)
    message = _TS.sub("<ts>", message)
    message = _UUID.sub("<uuid>", message)
    message = _SINGLE.sub(r"\1<str>", message)
    message = _DOUBLE.sub("<str>", message)
    # placeholders are words between < and >: `_fold_word` sees them as `<` + word, so mark them
    message = re.sub(r"(?<=<)(model|ts|uuid|str)(?=>)", lambda m: m.group(0).upper(), message)
    message = _WORD.sub(_fold_word, message)
    message = re.sub(r"<(MODEL|TS|UUID|STR)>", lambda m: f"<{m.group(1).lower()}>", message)
    return _SPACE.sub(" ", message).strip()[:MAX_SIGNATURE]


_MESSAGES = """
SELECT n.node_id AS node_id, n.error AS message, n.model AS models_key, created_at
FROM (SELECT created_at, unnest(nodes) AS n FROM executions WHERE {scope})
WHERE n.error IS NOT NULL
UNION ALL
SELECT 'global', json_extract_string(errors, '$.global'),
    array_to_string(list_sort(list_distinct(list_transform(nodes, lambda x: x.model))), chr(10)), created_at
FROM executions
WHERE {scope} AND json_extract_string(errors, '$.global') IS NOT NULL
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
