"""Scans over a column of JSON text in bulk: numpy on Arrow's buffers, no Python per row.

Used where a whole chunk of texts is checked before DuckDB reads it (the batch's bulk path, the
Open WebUI import).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


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
        raw = np.frombuffer(memoryview(data), np.uint8)
        opens = np.flatnonzero((raw == ord("[")) | (raw == ord("{")))
        rows = np.searchsorted(offsets, opens, side="right") - 1  # the row each bracket is in
        rows = rows[(rows >= 0) & (rows < len(arr))]
        counts.append(np.bincount(rows, minlength=len(arr)))
    return np.concatenate(counts) if counts else np.zeros(0, np.int64)
