"""What a failure signature is: an error message with its variable parts stripped.

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

The rules live here, under the insights that count signatures, because search filters by one
(`signature_clause`): a signature's count and the runs a search by it finds are the same runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from analytics.core.store import Connection

Clause = tuple[str, list[Any]]

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


# A node's error with its model, and a run-level error with the run's models: the pairs
# `normalise` reads. A node named "global" has the run's own error as its error (both are
# `errors["global"]`): it is counted once, as the run's. `to_json` names a pair in one string,
# the same on both sides of the match.
RUN_MODELS = "array_to_string(list_sort(list_distinct(list_transform(nodes, lambda x: x.model))), chr(10))"
GLOBAL_ERROR = "json_extract_string(errors, '$.global')"
_NODE_PAIRS = (
    "SELECT n.error AS message, n.model AS models_key"
    " FROM (SELECT unnest(nodes) AS n FROM executions WHERE {where})"
    " WHERE n.node_id = ? AND n.error IS NOT NULL"
)
NODE_ERROR = "n.error IS NOT NULL AND n.node_id <> 'global'"
_GLOBAL_PAIRS = (
    f"SELECT {GLOBAL_ERROR} AS message, {RUN_MODELS} AS models_key"
    f" FROM executions WHERE ({{where}}) AND {GLOBAL_ERROR} IS NOT NULL"
)
_NODE_MATCH = (
    "list_has_any([to_json([n.error, n.model]) FOR n IN nodes"
    " IF n.node_id = ? AND n.error IS NOT NULL], ?::VARCHAR[])"
)
_GLOBAL_MATCH = f"to_json([{GLOBAL_ERROR}, {RUN_MODELS}]) IN (SELECT unnest(?::VARCHAR[]))"


def signature_clause(c: Connection, where: Clause, node_id: str, signature: str) -> Clause:
    """Runs whose error at `node_id` ("global": the run's own error) has this signature, among
    the runs `where` admits: the distinct messages are read and normalised here, as the
    signatures' counts are, and a run matches one of those that give `signature`."""
    sql, params = where
    if node_id == "global":
        pairs, args, match = _GLOBAL_PAIRS.format(where=sql), list(params), _GLOBAL_MATCH
    else:
        pairs, args, match = _NODE_PAIRS.format(where=sql), [*params, node_id], _NODE_MATCH
    rows = c.execute(
        f"SELECT DISTINCT message, models_key, to_json([message, models_key]) FROM ({pairs})", args
    ).fetchall()
    keys = [key for m, k, key in rows if normalise(m, k.split("\n") if k else ()) == signature]
    if not keys:
        return "false", []
    return match, ([keys] if node_id == "global" else [node_id, keys])
