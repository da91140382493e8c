"""Record batches to CSV, JSON Lines or Parquet bytes, one chunk per batch, for streaming.

Downloads and the `sql` command write results of any size; each encoder turns one Arrow batch
into the bytes that follow the previous ones, holding nothing but that batch (Parquet writes
each batch as its own row group and its footer at the end). JSON Lines expects its lines
already made (DuckDB's `to_json` per row, in a column named `line`): DuckDB renders every
type, nested JSON payloads included, faster than Python would.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

JSON_LINE = "line"


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        return {
            Format.CSV: "text/csv; charset=utf-8",
            Format.JSONL: "application/x-ndjson",
            Format.PARQUET: "application/vnd.apache.parquet",
        }[self]


class _Drain(io.RawIOBase):
    """A sink that hands its bytes over on `take()` but keeps counting positions, since the
    Parquet footer records offsets from the start of the file."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._parts.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    sink = _Drain()
    # pyarrow-stubs list only IO/paths; pyarrow takes any object with write() (a RawIOBase here)
    with pacsv.CSVWriter(sink, schema) as writer:  # type: ignore[arg-type]  # header first, even for no rows
        yield sink.take()
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


def _jsonl(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    if schema.names != [JSON_LINE]:
        raise ValueError(f"JSON Lines needs one column {JSON_LINE!r} of rendered rows")
    for batch in batches:
        lines = cast("list[str]", batch.column(0).to_pylist())  # to_json of a row is never NULL
        if lines:
            yield ("\n".join(lines) + "\n").encode()


def _parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    sink = _Drain()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:  # type: ignore[arg-type]  # as in _csv
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


def encode(fmt: Format, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """Byte chunks of the whole file, one per batch (empty chunks skipped)."""
    encoder = {Format.CSV: _csv, Format.JSONL: _jsonl, Format.PARQUET: _parquet}[fmt]
    for chunk in encoder(batches, schema):
        if chunk:
            yield chunk
