"""Run and flow JSON as the editor writes it: lone UTF-16 surrogate escapes read as U+FFFD.

The editor spreads a node's text result into its config one UTF-16 unit per key, so an emoji
(or any character past U+FFFF) arrives as two keys holding one half each, `"\\ud83d"` and
`"\\ude00"`. JSON text may spell such a half, but no UTF-8 string can hold it: orjson refuses
the document, and so does DuckDB's JSON. Refusing it would lose every run whose answer holds an
emoji, so each lone half is read as U+FFFD (the replacement character, as UTF-16 decoders do);
escaped pairs and everything else are read exactly. Bytes that are not UTF-8 stay refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

# an escaped backslash (skipped, so `\\ud83d` stays text), a high half with or without the low
# half after it, or a low half alone
_HALVES = re.compile(
    rb"\\\\|\\u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_REPLACEMENT = rb"\ufffd"


def _mended(match: re.Match[bytes]) -> bytes:
    whole = match.group(0)
    if whole == rb"\\" or match.group(2) is not None:  # an escaped backslash, or a whole pair
        return whole
    return _REPLACEMENT


def mend_surrogates(text: bytes) -> bytes:
    """`text` with each escaped lone surrogate written as the escape of U+FFFD."""
    return _HALVES.sub(_mended, text)


def has_lone_surrogate(error: orjson.JSONDecodeError) -> bool:
    """orjson refused the text for an escaped half without its other half."""
    return "surrogate" in error.msg and "UTF-8" not in error.msg


def loads_mended(data: bytes | str) -> Any:
    """orjson's reading of `data`, with lone surrogate escapes read as U+FFFD; any other
    error is orjson's, at its position in the text as sent (a mended escape keeps its length)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if not has_lone_surrogate(exc):
            raise
        raw = data.encode() if isinstance(data, str) else data
        value = orjson.loads(mend_surrogates(raw))
        if merges_keys(raw):
            raise orjson.JSONDecodeError(
                "two keys of one object differ only in lone UTF-16 surrogates, which both read as U+FFFD",
                raw.decode(errors="replace"),
                0,
            ) from exc
        return value


# a half, then the rest of a string and a colon: maybe in a key (a false hit costs a slower check)
_HALF_IN_KEY = re.compile(rb'\\u[dD][89a-fA-F][0-9a-fA-F]{2}(?:[^"\\]|\\.)*"\s*:')


class _Merged(Exception):
    pass


def merges_keys(raw: bytes) -> bool:
    """Whether two keys of one object differ only in their lone halves: both read as U+FFFD,
    and one value would be dropped without a word (a body is refused; an import says so)."""
    if not _HALF_IN_KEY.search(raw):
        return False

    def distinct(pairs: list[tuple[str, Any]]) -> None:
        seen: dict[str, str] = {}
        for key, _ in pairs:
            mended = key.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            if seen.setdefault(mended, key) != key:
                raise _Merged

    try:
        json.loads(raw, object_pairs_hook=distinct)
    except _Merged:
        return True
    except (RecursionError, ValueError):  # deeper than the stdlib reads, or not JSON: said elsewhere
        return False
    return False


# any escaped half (a whole pair too: mending leaves it as it is); only texts holding one are read
_ANY_HALF = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"


def mend_column(
    texts: pa.Array[Any] | pa.ChunkedArray[Any],
) -> tuple[pa.Array[Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A column of JSON texts (the import's payloads) with lone surrogate escapes mended, per
    row whether its text changed, and per row whether two of its keys then read the same (only
    the last one's value is read back). Texts without an escaped half are not touched."""
    column = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    changed = np.zeros(len(column), np.bool_)
    merged = np.zeros(len(column), np.bool_)
    rows = np.flatnonzero(
        pc.match_substring_regex(column, _ANY_HALF).fill_null(False).to_numpy(zero_copy_only=False)
    )
    if not rows.size:
        return column, changed, merged
    old = cast("list[str]", column.take(rows).to_pylist())  # texts that match: never null
    new = [mend_surrogates(t.encode()).decode() for t in old]
    changed[rows] = [a != b for a, b in zip(old, new, strict=True)]
    merged[rows] = [a != b and merges_keys(a.encode()) for a, b in zip(old, new, strict=True)]
    mask = pa.array(np.isin(np.arange(len(column)), rows[changed[rows]]))
    replacements = pa.array([b for a, b in zip(old, new, strict=True) if a != b], column.type)
    return pc.replace_with_mask(column, mask, replacements), changed, merged
