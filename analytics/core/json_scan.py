"""Scans over a column of JSON text in bulk: numpy on Arrow's buffers, no Python per row.

Used where a whole chunk of texts is checked before DuckDB reads it (the batch's bulk path, the
Open WebUI import).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# bytes scanned at a time: numpy's temporaries stay small. Over a whole 13 MB chunk they were
# fresh huge pages (numpy asks for them past 4 MB) that the kernel zeroes on every chunk: ~5 % of
# the batch endpoint's CPU in `perf record` of the server
WINDOW = 1 << 20


def opening_brackets(column: pa.Array[Any] | pa.ChunkedArray[Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Per row, how many `[` and `{` its text holds (those inside strings too): a bound on its
    nesting depth, in one pass over the bytes."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    counts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    for chunk in chunks:
        arr = chunk if chunk.type == pa.string() else chunk.cast(pa.string())
        offset_buffer, data = arr.buffers()[1], arr.buffers()[2]
        if offset_buffer is None or data is None or len(arr) == 0:
            counts.append(np.zeros(len(arr), np.int64))
            continue
        offsets = np.frombuffer(memoryview(offset_buffer), np.int32)[arr.offset : arr.offset + len(arr) + 1]
        raw = np.frombuffer(memoryview(data), np.uint8)[offsets[0] : offsets[-1]]
        count = np.zeros(len(arr), np.int64)
        for at in range(0, len(raw), WINDOW):
            window = raw[at : at + WINDOW]
            opens = np.flatnonzero((window == ord("[")) | (window == ord("{"))) + (offsets[0] + at)
            rows = np.searchsorted(offsets, opens, side="right") - 1  # the row each bracket is in
            count += np.bincount(rows, minlength=len(arr))
        counts.append(count)
    return np.concatenate(counts) if counts else np.zeros(0, np.int64)


def newlines(body: bytes) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Where `body`'s newlines are: `bytes.find` (memchr) from one to the next, which allocates
    nothing the size of the body and took 0.6 ms for a 13 MB chunk against numpy's 2.2."""
    found: list[int] = []
    find = body.find
    at = find(b"\n")
    while at >= 0:
        found.append(at)
        at = find(b"\n", at + 1)
    return np.array(found, np.int64)


def _orjson_form_pattern() -> str:
    """JSON text written as orjson writes it back (`orjson.dumps(orjson.loads(t)) == t`): no
    whitespace between tokens, strings with only the escapes orjson writes, numbers as orjson
    writes them. Numbers are kept to what is provably written back unchanged: integers of up to
    15 digits (not `-0`), and decimals of up to 15 significant digits (two distinct ones are two
    distinct doubles, so a double's shortest form is the one given) between 1e-4 and 1e15,
    without trailing zeros (but `1.0`). A number takes the byte after it (`,` `]` `}` or the end)
    so `1.50` is not read as `1.5` then `0`. The structure is the JSON reader's job: this looks
    at tokens only."""
    string = r'"(?:[^"\\\x00-\x1f]|\\["\\bfnrt]|\\u00(?:0[0-7bef]|1[0-9a-f]))*"'
    whole = [rf"[1-9][0-9]{{{k - 1}}}\.(?:0|[0-9]{{0,{14 - k}}}[1-9])" for k in range(1, 15)]
    whole.append(r"[1-9][0-9]{14}\.0")
    fraction = r"0\.(?:0|0{0,3}[1-9](?:[0-9]{0,13}[1-9])?)"
    number = rf"(?:0|-?[1-9][0-9]{{0,14}}|-?(?:{'|'.join(whole)}|{fraction}))(?:[,\]}}]|$)"
    return rf"^(?:{string}|{number}|[\[\]{{}}:,]|true|false|null)*$"


ORJSON_FORM = _orjson_form_pattern()


def in_orjson_form(column: pa.Array[Any] | pa.ChunkedArray[Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per row, whether its text is JSON as orjson writes it (null rows: true), scanned by
    Arrow's RE2 with the GIL released; a row that is not valid JSON may pass (the reader
    decides that)."""
    matched = pc.match_substring_regex(column, ORJSON_FORM).fill_null(True)
    return np.asarray(matched.to_numpy(zero_copy_only=False), dtype=np.bool_)
