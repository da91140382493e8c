"""JSON as flowhistory writes it: orjson, compact UTF-8, one set of options for every room.

orjson rather than the stdlib: faster on the ingest path, and stricter (it refuses lone UTF-16
surrogates and non-string keys, which would otherwise be stored and fail later in DuckDB or in a
reader). Every stored JSON column, webhook body and answer body is written here, so they all
agree on what is JSON. Places that deliberately write differently say why where they do.
"""

from __future__ import annotations

from typing import Any

import orjson

from analytics.core.errors import InvalidInput

# orjson's own errors: JSONEncodeError is a TypeError; depth and type problems raise either.
NOT_JSON = (TypeError, orjson.JSONEncodeError)


def dumps(value: Any) -> bytes:
    """The project's JSON bytes; raises TypeError for what is not JSON."""
    return orjson.dumps(value)


def dumps_text(value: Any) -> str:
    """The same, as text: for VARCHAR/JSON columns (summaries, payloads)."""
    return orjson.dumps(value).decode()


def canonical(value: Any) -> bytes:
    """Keys sorted, so equal documents give equal bytes: for hashes (a flow's version)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def stored_text(value: Any, field: str) -> str | None:
    """A caller's value as stored JSON text; None stays NULL. What orjson cannot write (too
    deep, not JSON) is the caller's mistake: InvalidInput naming the field, never a 500."""
    if value is None:
        return None
    try:
        return dumps_text(value)
    except NOT_JSON as exc:
        raise InvalidInput(f"{field} is nested too deeply or not JSON: {exc}", field=field) from exc
