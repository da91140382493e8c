"""Batch ingest in bulk: the body read by DuckDB into columns, each item's verdict as today's.

The per-item path (`ingest.save_executions`) parses every run into Python objects, validates it
with pydantic and walks its payloads for node facts: about 3,800 runs/s, bound by building
Python objects for payloads it only writes back as text. Here DuckDB parses each line once in
C++ (`from_json` into a MAP) and hands back the payloads as minified JSON text, which is what
the store keeps; only the scalar fields (ids, status, times, versions) go to pydantic, as one
JSON array a chunk validated by the same model (`ExecutionImport`) and checked by the same rules
as `stage`; node facts come from `node_facts_columnar`; the good rows go in as Arrow inserts.

NDJSON is cut into chunks of `CHUNK_LINES` lines as it arrives (`NdjsonFeed`: the route streams
the body), each prepared on one of the two preparing threads (`preparing.py`, each chunk on a
one-thread DuckDB; DuckDB and Arrow release the GIL) while the rest still arrives. Nothing is stored before the whole body is
in and its item count checked; then, in the batch's order, duplicates and ids already stored are
judged and each chunk goes to the writer while the chunks after it are still being prepared.
Each chunk commits on its own: a chunk that fails (preparing or committing) has its items
refused with the reason, and the other chunks' items are stored and said so. Once the server is
told to stop, no further chunk is stored (its items are refused, "send it again"), so a long
batch is answered within the seconds the server gives requests in flight, never cut off with
part of it stored and no word of which.

What the bulk path cannot decide goes to the per-item path, item by item, so its verdict and
stored row are exactly today's: a line that is not JSON or not an object, a payload that is not
an object, anything pydantic or `stage` refuses (the per-item path then gives the message), a
`replay_of`, a `flow` definition (kept in flow_versions), and text where DuckDB's JSON differs
from orjson's (`_DIFFERS`: NaN/Infinity and trailing commas DuckDB accepts and orjson refuses;
numbers DuckDB writes differently: exponents, 16 or more digits, below 1e-4; control-character
escapes, which DuckDB writes in upper case; deep nesting; a key repeated at the top level). A
chunk whose lines are not all UTF-8 goes item by item.

Known difference (as node_facts_columnar's, on bodies no JSON writer emits): a key repeated
inside a payload's object is stored as sent, where orjson would keep its last value only.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from analytics.access.permissions import FLOW_NOT_FOUND, Grant, Viewer
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, InvalidInput, StoreClosed
from analytics.core.json_scan import newlines, opening_brackets
from analytics.core.json_text import loads_mended
from analytics.history import ingest
from analytics.history.node_facts_columnar import drop_facts, facts_into
from analytics.history.preparing import Preparers

# the payloads, kept as DuckDB's JSON text (the scalars: _VALIDATED, below)
_PAYLOADS = ("inputs", "outputs", "node_results", "errors", "meta")
# chunks of the batch prepared at once, each on its thread's own one-thread DuckDB (the writer
# inserts the chunks before them meanwhile). A chunk pays a fixed ~35 ms (setting up the facts' SQL),
# so chunks are not small: in process, 1,250-line chunks ran at 6,500-7,500 runs/s, 2,500 at
# 8,700-9,000, 5,000 at 6,200 (BENCHMARKS.md)
CHUNK_LINES = 2_500
# the verdict of a chunk not stored because the server was told to stop (Context.stopping)
STOPPING = "not stored: the server is stopping; send it again"

_MAX_BRACKETS = 200  # under orjson's depth limits (1024 to read, 255 to write), whatever is nested

# where DuckDB's reading or writing of JSON is not orjson's (see the module's docstring)
_NUMBER = r"[:\[,]\s*-?"  # where a number starts (outside strings; inside them: a needless fallback)
_DIFFERS = (
    _NUMBER + r"(?i:nan|inf)"  # NaN, Infinity, inf: DuckDB accepts them
    r"|,\s*[\]}]"  # a trailing comma: DuckDB accepts it
    f"|{_NUMBER}[0-9]+(\\.[0-9]+)?[eE]"  # exponents: written differently
    f"|{_NUMBER}[0-9]{{16}}"  # 16 digits and more: written differently, or past 64 bits
    f"|{_NUMBER}0\\.0000"  # below 1e-4: orjson writes an exponent
    r"|\\u00[01]"  # control characters: \u001F against orjson's \u001f
)

# a MAP, not a STRUCT: one parse of the line, and a key given twice makes it fail (orjson keeps
# the last value; the per-item path decides); the scalars go to pydantic as one JSON object a run
_VALIDATED = ("id", "flow_id", "status", "execution_time", "created_at", "user_id", "flow_version")
_OBJECT_OR_NULL = " AND ".join(
    f"(m['{k}'] IS NULL OR left(CAST(m['{k}'] AS VARCHAR), 1) IN ('{{', 'n'))" for k in _PAYLOADS
)
_SCALARS_OBJECT = " || ',' || ".join(
    f"""'"{k}":' || coalesce(CAST(m['{k}'] AS VARCHAR), 'null')""" for k in _VALIDATED
)
_PAYLOAD_COLUMNS = ", ".join(f"nullif(CAST(m['{k}'] AS VARCHAR), 'null') AS {k}" for k in _PAYLOADS)
# no filter on `m`: DuckDB would push it into the subquery and parse every line twice; a line
# the bulk path does not take has no `scalars`
_SELECT = f"""
    SELECT rn,
        CASE WHEN m IS NOT NULL AND coalesce(CAST(m['replay_of'] AS VARCHAR), 'null') = 'null'
                  AND coalesce(CAST(m['flow'] AS VARCHAR), 'null') = 'null' AND {_OBJECT_OR_NULL}
            THEN '{{' || {_SCALARS_OBJECT} || '}}' END AS scalars,
        {_PAYLOAD_COLUMNS}
    FROM (
        SELECT rn, CASE WHEN NOT deep AND NOT differs AND left(line, 1) = '{{'
            THEN try(from_json(line, '"MAP(VARCHAR, JSON)"')) END AS m
        FROM lines
    )
"""  # built from constants only
# the scalars of a chunk's runs, validated in one call (pydantic's JSON mode: the same rules as
# the per-item path's, on the values orjson would read)
_FORMS: TypeAdapter[list[ingest.ExecutionImport]] = TypeAdapter(list[ingest.ExecutionImport])


@dataclass(slots=True)
class _Item:
    """A run the bulk path decided on: its scalars checked, its row's columns known."""

    rn: int  # its row in the payload columns
    line: int  # its line in the chunk
    id: str
    id_supplied: bool
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: datetime
    version: str | None


@dataclass(slots=True)
class Timings:
    """Seconds per stage of one batch, for the benchmark (BENCHMARKS.md)."""

    seconds: dict[str, float] = field(default_factory=dict)
    bulk: int = 0  # items the bulk path decided
    per_item: int = 0  # items left to the per-item path
    _lock: threading.Lock = field(default_factory=threading.Lock)  # chunks are prepared on two threads

    def count(self, bulk: int, per_item: int) -> None:
        with self._lock:
            self.bulk += bulk
            self.per_item += per_item

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def ndjson_items(body: bytes) -> list[Any]:
    """NDJSON as the per-item path reads it: blank lines skipped, a bad line is refused, not fatal.

    Lines end at `\n` only (NDJSON's rule; a CRLF line keeps its `\r`, JSON whitespace): a lone
    `\r` between two tokens is whitespace inside a line, where `splitlines()` cut the line in two
    and moved every later item's index on by one (a client mapping indexes back resent the wrong
    lines)."""
    items: list[Any] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        items.append(_line_item(number, line))
    return items


# a JSON string (its escapes included), or one of the bytes that shape an array's top level
_ARRAY_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def array_items(body: bytes) -> list[Any] | None:
    """A JSON array's items read one by one, for the array orjson refuses whole only because one
    item is nested past its depth limit: that item is refused, the others are read (one such item
    refused the whole batch, where NDJSON refused the line). None when the body's top level is not
    one array (the whole body is then refused as before). Slow (a regex over the body): only for
    that case."""
    depth, start, pieces, end = 0, -1, [], -1
    for m in _ARRAY_TOKENS.finditer(body):
        token = m.group()
        if token[:1] == b'"':
            continue
        if token in (b"[", b"{"):
            if depth == 0:
                if token != b"[" or body[: m.start()].strip():
                    return None
                start = m.end()
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                pieces.append(body[start : m.start()])
                end = m.end()
                break
        elif depth == 1:  # a comma between two items
            pieces.append(body[start : m.start()])
            start = m.end()
    if end < 0 or body[end:].strip():
        return None
    if len(pieces) == 1 and not pieces[0].strip():
        return []  # `[]`
    items: list[Any] = []
    for index, piece in enumerate(pieces):
        try:
            items.append(loads_mended(piece))
        except orjson.JSONDecodeError as exc:
            items.append(InvalidInput(f"item {index} is not JSON: {_plain(exc.msg)}"))
    return items


def _plain(msg: str) -> str:
    """orjson's message in words: bytes that are not UTF-8 read "surrogates not allowed"."""
    return "it is not UTF-8" if "not valid UTF-8" in msg else msg


def _line_item(number: int, line: bytes) -> Any:
    try:
        return loads_mended(line)
    except orjson.JSONDecodeError as exc:
        return InvalidInput(f"line {number} is not JSON: {_plain(exc.msg)}")


@dataclass(frozen=True, slots=True)
class Lines:
    """NDJSON lines that are not blank, numbered as `ndjson_items` numbers them (lines end at
    `\n`): found with numpy and handed to DuckDB as Arrow strings over the body's own bytes (no
    copy)."""

    body: bytes
    starts: np.ndarray[Any, np.dtype[np.int64]]
    ends: np.ndarray[Any, np.dtype[np.int64]]
    numbers: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def of(cls, body: bytes, first: int = 1) -> Lines:
        """The lines of `body`, the first numbered `first`."""
        breaks = newlines(body)
        starts = np.concatenate(([0], breaks + 1)).astype(np.int64)
        ends = np.concatenate((breaks, [len(body)])).astype(np.int64)
        numbers = np.arange(first, first + len(starts), dtype=np.int64)
        # blank: empty, or only the ASCII whitespace bytes.strip() removes (\n is not in a line)
        keep = ends > starts
        firsts = np.frombuffer(body, np.uint8)[starts[keep]]
        maybe = np.flatnonzero(keep)[np.isin(firsts, np.frombuffer(b" \t\r\x0b\x0c", np.uint8))]
        for j in maybe:
            keep[j] = bool(body[starts[j] : ends[j]].strip())
        return cls(body, starts[keep], ends[keep], numbers[keep])

    def __len__(self) -> int:
        return len(self.starts)

    def item(self, i: int) -> Any:
        """Line `i` as the per-item path reads it."""
        return _line_item(int(self.numbers[i]), self.body[self.starts[i] : self.ends[i]])

    def chunks(self, size: int) -> list[Lines]:
        """Runs of `size` lines, over the same bytes."""
        return [
            Lines(self.body, *(a[i : i + size] for a in (self.starts, self.ends, self.numbers)))
            for i in range(0, len(self), size)
        ]

    def array(self) -> pa.Array[Any] | None:
        """The lines as Arrow strings, each up to the next one's start (the newline, and any blank
        lines: whitespace, which a JSON reader skips or refuses, and then the per-item path reads
        the line itself), or None when a line is not UTF-8 (or the body is past 32-bit offsets)."""
        if len(self) == 0:
            return pa.array([], pa.string())
        if len(self.body) >= 2**31:
            return None
        offsets = np.append(self.starts, self.ends[-1]).astype(np.int32)
        values = pa.StringArray.from_buffers(
            len(self), pa.py_buffer(offsets.tobytes()), pa.py_buffer(self.body)
        )
        try:
            values.validate(full=True)  # UTF-8 too
        except pa.ArrowInvalid:
            return None
        return values

    def chunk(self) -> _Chunk:
        return _Chunk(len(self), self.array(), self.item, int(self.numbers[0]) - 1 if len(self) else 0)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Up to CHUNK_LINES items: as Arrow strings for DuckDB (None: not UTF-8, so item by item),
    and each one as the per-item path reads it."""

    n: int
    values: pa.Array[Any] | None
    item: Callable[[int], Any]
    first: int = 0  # its first item's place in the batch, or a number below it (lines, blank ones too)


class NdjsonFeed:
    """An NDJSON body handed over piece by piece as it arrives (the route streams it): each run of
    CHUNK_LINES lines is prepared while the rest still arrives. Nothing is stored before the
    whole body is in and its item count checked (`finish`)."""

    def __init__(self, ctx: Context, viewer: Viewer, timings: Timings | None = None) -> None:
        self._ctx = ctx
        self._batch = _Batch(ctx, viewer, timings or Timings())
        self._pieces: list[memoryview] = []  # since the last cut
        self._breaks = 0  # newlines in them
        self._lines_before = 0  # lines in the chunks cut already

    def add(self, piece: bytes) -> None:
        if not piece:
            return
        view = memoryview(piece)
        # numpy, not bytes.count/index: ~5x faster, and this runs on the event loop
        breaks = np.flatnonzero(np.frombuffer(piece, np.uint8) == ord("\n"))
        at = 0  # where the uncut part of this piece starts
        # past batch_max_items lines no chunk is cut: a body over the limit is refused at the end,
        # and must not make the server prepare more than a batch's worth first
        limit = self._ctx.settings.batch_max_items
        while self._breaks + len(breaks) >= CHUNK_LINES and self._lines_before < limit:
            cut = int(breaks[CHUNK_LINES - self._breaks - 1]) + 1  # after the chunk's last newline
            breaks = breaks[CHUNK_LINES - self._breaks :]
            head = [*self._pieces, view[at:cut]]
            self._pieces, self._breaks, at = [], 0, cut
            first, self._lines_before = self._lines_before + 1, self._lines_before + CHUNK_LINES
            self._batch.add(partial(_cut_chunk, head, first))
        if at < len(piece):
            self._pieces.append(view[at:])
            self._breaks += len(breaks)

    def finish(self) -> ingest.BatchResult:
        """Store what the body holds: at most `batch_max_items` items (else nothing is stored)."""
        try:
            rest = Lines.of(b"".join(self._pieces), self._lines_before + 1)
            self._pieces = []
            limit = self._ctx.settings.batch_max_items
            if self._lines_before + len(rest) > limit:  # lines, blank ones too: count the items
                ingest.check_batch_size(self._ctx, self._batch.items() + len(rest))
            for chunk in rest.chunks(CHUNK_LINES):
                self._batch.add(chunk.chunk)
        except BaseException:
            self.abandon()
            raise
        return ingest.BatchResult.of(self._batch.store())

    def abandon(self) -> None:
        """Nothing of the body is stored (it was too big, or the client went away)."""
        self._batch.abandon()


def _cut_chunk(pieces: list[memoryview], first: int) -> _Chunk:
    return Lines.of(b"".join(pieces), first).chunk()


def ingest_ndjson(
    ctx: Context, viewer: Viewer, body: bytes, timings: Timings | None = None
) -> ingest.BatchResult:
    """The batch endpoint for NDJSON given whole: at most `batch_max_items` items."""
    feed = NdjsonFeed(ctx, viewer, timings)
    feed.add(body)
    return feed.finish()


def ingest_json_array(
    ctx: Context, viewer: Viewer, body: bytes, timings: Timings | None = None
) -> ingest.BatchResult | None:
    """The batch endpoint for a JSON array, or None where DuckDB cannot decide the whole body
    (not UTF-8, not JSON, or text where DuckDB's JSON is not orjson's): the caller then reads
    it as before, and refuses it whole when it is not JSON."""
    timings = timings or Timings()
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    with timings.stage("split"):
        con = duckdb.connect()
        try:
            con.execute("SET threads = 2")
            row = con.execute(
                f"SELECT CASE WHEN json_valid($b) AND NOT regexp_matches($b, '{_DIFFERS}')"
                " THEN CAST(json_extract($b, '$[*]') AS VARCHAR[]) END",
                {"b": text},
            ).fetchall()[0]
        except duckdb.Error:  # e.g. nested past what DuckDB reads: orjson's verdict, the old way
            return None
        finally:
            con.close()
    elements: list[str] | None = row[0] if row else None
    if elements is None:
        return None
    ingest.check_batch_size(ctx, len(elements))
    with timings.stage("split"):
        lines = pa.array(elements, pa.string())
        if (opening_brackets(lines) > _MAX_BRACKETS).any():
            return None  # orjson may refuse the whole array as too deep: it says so, the old way
    batch = _Batch(ctx, viewer, timings)
    for start in range(0, len(lines), CHUNK_LINES):
        values = lines.slice(start, CHUNK_LINES)
        batch.add(_Chunk(len(values), values, partial(_element, elements, start), start))
    return ingest.BatchResult.of(batch.store())


def _element(elements: list[str], start: int, i: int) -> Any:
    return loads_mended(elements[start + i])


@dataclass(slots=True)
class _Prepared:
    """One chunk of the batch, decided: the rows to store (EXECUTIONS_SCHEMA, payloads typed as
    JSON), each row's place in the chunk and id, and why the items refused already were; or the
    error that kept the chunk from being prepared."""

    n: int  # items in the chunk
    table: pa.Table | None = None
    places: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    supplied: list[bool] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    staged: list[ingest.Staged] = field(default_factory=list)  # the per-item path's (their flow definitions)
    failed: Exception | None = None


class _Batch:
    """A batch's chunks, each prepared on the two threads as soon as it is added; then, in the
    batch's order, duplicates and ids already stored are judged (as save_executions judges them)
    and each chunk goes to the writer while the chunks after it are still being prepared."""

    def __init__(self, ctx: Context, viewer: Viewer, timings: Timings) -> None:
        self._ctx, self._viewer, self._timings = ctx, viewer, timings
        self._preparers = Preparers()
        # each chunk's preparation, and what it prepares (to count a chunk never prepared)
        self._chunks: list[tuple[Future[_Prepared], _Chunk | Callable[[], _Chunk]]] = []
        self._now = utc_now()  # created_at of the items without one (a microsecond apart, in order)

    def add(self, chunk: _Chunk | Callable[[], _Chunk]) -> None:
        """A chunk, or what makes one (run on a preparing thread: splitting the bytes too)."""
        future = self._preparers.submit(
            _prepare, self._ctx, self._preparers, self._viewer, chunk, self._timings, self._now
        )
        self._chunks.append((future, chunk))

    def items(self) -> int:
        """The batch's items (waits for every chunk to be prepared)."""
        return sum(f.result().n for f, _ in self._chunks)

    def abandon(self) -> None:
        self._preparers.close(cancel=True)

    def store(self) -> list[ingest.ItemResult]:
        ctx, timings = self._ctx, self._timings
        results: list[ingest.ItemResult] = []
        seen: set[str] = set()
        pending: list[tuple[Future[Any], list[tuple[int, str]], pa.Table]] = []
        try:
            for future, source in self._chunks:
                offset = len(results)
                if ctx.stopping.is_set():  # the chunks not started yet never will be
                    self._preparers.close(cancel=True)
                if future.cancelled():  # never prepared: only counted
                    n = (source if isinstance(source, _Chunk) else source()).n
                    results.extend(
                        ingest.ItemResult(offset + i, "refused", detail=STOPPING) for i in range(n)
                    )
                    continue
                chunk = future.result()
                verdicts: list[ingest.ItemResult | None] = [None] * chunk.n
                failed = chunk.failed
                if failed is None and ctx.stopping.is_set():
                    failed = StoreClosed(STOPPING)
                if failed is not None:  # this chunk's items are refused, the others go on
                    why = ingest.failure_verdict(failed, "preparation")
                    results.extend(
                        ingest.ItemResult(offset + i, "refused", detail=why) for i in range(chunk.n)
                    )
                    continue
                for place, detail in chunk.refused.items():
                    verdicts[place] = ingest.ItemResult(offset + place, "refused", detail=detail)
                keep: list[int] = []
                # in the batch's order (bulk items come first in the chunk's lists): of an id given
                # twice the first item is stored, as the per-item path does
                for pos in sorted(range(len(chunk.places)), key=chunk.places.__getitem__):
                    place, run_id = chunk.places[pos], chunk.ids[pos]
                    if run_id in seen:
                        verdicts[place] = ingest.ItemResult(
                            offset + place, "refused", detail=f"id {run_id} appears twice in this batch"
                        )
                        continue
                    seen.add(run_id)
                    keep.append(pos)
                with timings.stage("existing ids"):
                    existing = ingest.existing_ids(ctx, [chunk.ids[p] for p in keep if chunk.supplied[p]])
                fresh = []
                for pos in keep:
                    place, run_id = chunk.places[pos], chunk.ids[pos]
                    if run_id in existing:
                        verdicts[place] = ingest.ItemResult(
                            offset + place, "refused", detail=f"an execution with id {run_id} already exists"
                        )
                    else:
                        fresh.append(pos)
                stored = [(offset + chunk.places[p], chunk.ids[p]) for p in fresh]
                results.extend(cast("list[ingest.ItemResult]", verdicts))  # the stored ones: below
                if not fresh or chunk.table is None:
                    continue
                # its rows in the order of `stored` (commit_new's positions are theirs)
                in_order = fresh == list(range(chunk.table.num_rows))
                table = chunk.table if in_order else chunk.table.take(fresh)
                ids = {run_id for _, run_id in stored}
                try:
                    ingest.remember_definitions(ctx, [s for s in chunk.staged if s.execution.id in ids])
                    committed = ingest.submit_table(ctx, table)
                except Exception as exc:  # the verdict says why, below
                    committed = Future()
                    committed.set_exception(exc)
                pending.append((committed, stored, table))
        finally:
            self._preparers.close()
        with timings.stage("insert (writer, commit)"):
            for committed, stored, table in pending:
                flows = cast("list[str]", table.column("flow_id").to_pylist())
                try:
                    taken, gone, error = ingest.commit_new(
                        ctx,
                        [run_id for _, run_id in stored],
                        flows,
                        partial(_submit_rows, ctx, table),
                        first=committed,
                    )
                except Exception as exc:  # looking the ids up again failed: the verdict says why
                    taken, gone, error = set(), set(), exc
                failure = None if error is None else ingest.failure_verdict(error)
                for (index, run_id), flow in zip(stored, flows, strict=True):  # failed: none stored
                    if run_id in taken:  # by a concurrent batch or import, since it was checked
                        detail = f"an execution with id {run_id} already exists"
                        results[index] = ingest.ItemResult(index, "refused", detail=detail)
                    elif flow in gone:  # deleted since it was checked: the run does not outlive it
                        results[index] = ingest.ItemResult(index, "refused", detail=FLOW_NOT_FOUND)
                    elif failure is not None:
                        results[index] = ingest.ItemResult(index, "refused", detail=failure)
                    else:
                        results[index] = ingest.ItemResult(index, "stored", id=run_id)
        return results


def _submit_rows(ctx: Context, table: pa.Table, keep: list[int]) -> Future[Any]:
    return ingest.submit_table(ctx, table.take(keep))


def _prepare(
    ctx: Context,
    preparers: Preparers,
    viewer: Viewer,
    source: _Chunk | Callable[[], _Chunk],
    timings: Timings,
    now: datetime,
) -> _Prepared:
    """Decide one chunk: what DuckDB read and the scalars pass goes the bulk way; the rest goes
    through the per-item path, item by item, for today's verdict and row."""
    with timings.stage("split"):
        chunk = source if isinstance(source, _Chunk) else source()
    con = preparers.connection()
    try:
        decided: dict[int, _Item] = {}
        if chunk.values is not None:
            with timings.stage("read+check (DuckDB)"):
                cols = _read(con, chunk.values)
            with timings.stage("validate (scalars)"):
                decided = _validate(ctx, viewer, cols, now + timedelta(microseconds=chunk.first))
        with timings.stage("per-item fallback"):
            refused: dict[int, str] = {}
            staged: list[tuple[int, ingest.Staged]] = []
            for place in range(chunk.n):
                if place in decided:
                    continue
                item = chunk.item(place)
                if isinstance(item, FlowHistoryError):
                    refused[place] = item.detail
                    continue
                # without created_at: the time the bulk items get, by line, so the list keeps the
                # batch's order whichever path an item took
                arrived = now + timedelta(microseconds=chunk.first + place)
                try:
                    form = ingest.parse_form(item, ingest.ExecutionImport)
                    s = ingest.stage(ctx, viewer, form, arrived_at=arrived)
                except ValidationError as exc:
                    refused[place] = ingest.describe(exc)
                    continue
                except FlowHistoryError as exc:
                    refused[place] = exc.detail
                    continue
                staged.append((place, s))
        with timings.stage("node facts (columnar)"):
            bulk = [decided[place] for place in sorted(decided)]
            tables = [_bulk_table(con, ctx, cols, bulk)] if bulk else []
            if staged:
                tables.append(ingest.rows_table([s.row for _, s in staged]))
            table = None
            if tables:
                table = _typed_json(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
    except Exception as exc:  # the chunk's items are refused with the reason; the others go on
        preparers.discard(con)
        return _Prepared(chunk.n, failed=exc)
    except BaseException:
        preparers.discard(con)
        raise
    drop_facts(con)  # the chunk's rows are not kept between batches
    timings.count(len(bulk), chunk.n - len(bulk))
    return _Prepared(
        chunk.n,
        table,
        [it.line for it in bulk] + [place for place, _ in staged],
        [it.id for it in bulk] + [s.execution.id for _, s in staged],
        [it.id_supplied for it in bulk] + [s.id_supplied for _, s in staged],
        refused,
        [s for _, s in staged],
    )


def _read(con: duckdb.DuckDBPyConnection, lines: pa.Array[Any]) -> pa.Table:
    """The lines DuckDB can decide: rn, the scalars' JSON text, the payloads' JSON text."""
    # more brackets than orjson may nest (counting those in strings too: a needless fallback)
    deep = pa.array(opening_brackets(lines) > _MAX_BRACKETS)
    # Arrow's RE2 scan (GIL released) measured twice as fast as DuckDB's regexp_matches here
    differs = pc.match_substring_regex(lines, _DIFFERS)
    rn = pa.array(range(len(lines)), pa.int32())
    con.register("lines", pa.table({"rn": rn, "line": lines, "deep": deep, "differs": differs}))
    try:
        table: pa.Table = con.sql(_SELECT).to_arrow_table()
    finally:
        con.unregister("lines")
    return table


def _validate(ctx: Context, viewer: Viewer, cols: pa.Table, now: datetime) -> dict[int, _Item]:
    """The scalars of each line DuckDB read, checked as `stage` checks them; a line anything
    refuses is left out (the per-item path then says why, in today's words). An item without
    `created_at` gets `now` plus its line in the chunk in microseconds: one by one, each got the
    clock's time, so the list (newest first) answers them in the batch's order, reversed."""
    rns = cast("list[int]", cols.column("rn").to_pylist())
    texts = cast("list[str | None]", cols.column("scalars").to_pylist())
    positions, forms = _forms(texts)
    grants: dict[str, Grant | None] = {}  # None: the caller may not write it (per item says why)
    decided: dict[int, _Item] = {}
    misses = ingest.FlowMisses(ctx)
    for pos, form in zip(positions, forms, strict=True):
        if form.flow_id not in grants:
            try:
                grants[form.flow_id] = misses.grant(viewer, form.flow_id)
            except FlowHistoryError:
                grants[form.flow_id] = None
        grant = grants[form.flow_id]
        if grant is None:
            continue
        user_id = viewer.id
        if form.user_id is not None and form.user_id != viewer.id:
            if not viewer.is_admin:
                continue
            user_id = form.user_id
        try:
            version = ingest.version_of(form, grant.flow.version or None)
            if form.created_at is not None:
                created_at = ingest.checked_time(form.created_at)
            else:
                created_at = now + timedelta(microseconds=rns[pos])
        except FlowHistoryError:
            continue
        supplied = str(form.id) if form.id is not None else None
        decided[rns[pos]] = _Item(
            rn=pos,
            line=rns[pos],
            id=supplied or ingest.new_execution_id(created_at),
            id_supplied=supplied is not None,
            flow_id=grant.flow.id,
            user_id=user_id,
            status=form.status,
            execution_time=form.execution_time,
            created_at=created_at,
            version=version,
        )
    return decided


def _forms(texts: list[str | None]) -> tuple[list[int], list[ingest.ExecutionImport]]:
    """The scalar objects pydantic accepts (their positions) as forms, in one call a chunk; the
    items it refuses, and those without scalars, go the per-item way, which says why."""
    positions = [p for p, text in enumerate(texts) if text is not None]
    for _ in range(2):
        try:
            return positions, _FORMS.validate_json(
                "[" + ",".join(cast(str, texts[p]) for p in positions) + "]"
            )
        except ValidationError as exc:
            refused = {
                positions[e["loc"][0]] for e in exc.errors() if e["loc"] and isinstance(e["loc"][0], int)
            }
            positions = [p for p in positions if p not in refused] if refused else []
    return [], []


def _bulk_table(con: duckdb.DuckDBPyConnection, ctx: Context, cols: pa.Table, items: list[_Item]) -> pa.Table:
    """The decided runs' rows (EXECUTIONS_SCHEMA): payload text from DuckDB, facts in bulk."""
    take = pa.array([it.rn for it in items], pa.int32())
    pay = cols.select(list(_PAYLOADS)).take(take)
    created = pa.array([it.created_at for it in items], pa.timestamp("us"))
    runs = pa.table(
        {
            "rn": pa.array(range(len(items)), pa.int64()),
            "node_results": pay.column("node_results"),
            "errors": pay.column("errors"),
            "inputs": pay.column("inputs"),
            "day": pc.cast(created, pa.date32()),
        }
    )
    con.register("nf_runs", runs)
    try:
        facts: pa.Table = con.sql(
            f"SELECT * FROM {facts_into(con, 'nf_runs', ctx.prices)} ORDER BY rn"
        ).to_arrow_table()
    finally:
        con.unregister("nf_runs")
    outputs: pa.ChunkedArray[Any] = pay.column("outputs")
    node_results: pa.ChunkedArray[Any] = pay.column("node_results")
    same = pc.equal(outputs, node_results).fill_null(False)
    meta = pay.column("meta").fill_null(pa.scalar("{}", pa.string()))
    schema = ingest.EXECUTIONS_SCHEMA
    columns: dict[str, Any] = {
        "id": pa.array([it.id for it in items], pa.string()),
        "flow_id": pa.array([it.flow_id for it in items], pa.string()),
        "user_id": pa.array([it.user_id for it in items], pa.string()),
        "status": pa.array([it.status for it in items], pa.string()),
        "execution_time": pa.array([it.execution_time for it in items], pa.int64()),
        "created_at": created,
        "inputs": pay.column("inputs"),
        "outputs": pc.if_else(same, pa.scalar(None, pa.string()), outputs),
        "outputs_same": same,
        "node_results": node_results,
        "errors": pay.column("errors"),
        "meta": meta,
        "node_count": facts.column("node_count"),
        "tokens_in": facts.column("tokens_in"),
        "tokens_out": facts.column("tokens_out"),
        "tokens_estimated": facts.column("tokens_estimated"),
        "cost": facts.column("cost"),
        "flow_version": pa.array([it.version for it in items], pa.string()),
        "replay_of": pa.nulls(len(items), pa.string()),
        "nodes": facts.column("nodes"),
    }
    return pa.table(
        {name: pc.cast(columns[name], schema.field(name).type) for name in schema.names}, schema=schema
    )


def _typed_json(table: pa.Table) -> pa.Table:
    """The payload columns typed as JSON (Arrow's json extension): the insert takes them as
    they are instead of parsing every payload again to check it is JSON (it is: orjson wrote
    it, or DuckDB, from text orjson would have read the same)."""
    for name in _PAYLOADS:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, pa.field(name, pa.json_()), table.column(i).cast(pa.json_()))
    return table
