"""Batch ingest for backfills: a JSON array or NDJSON of executions, a verdict per item."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from analytics.core.errors import InvalidInput, UpstreamFailed
from analytics.core.json_text import loads_mended
from analytics.core.store import locked_here
from analytics.history import batch_bulk, ingest
from analytics.openwebui import importer
from api.content_type import JSON, is_accepted, media_type, refuse
from api.dependencies import AdminUser, Ctx, CurrentUser
from api.json_body import JsonRoute, decode_error, json_response
from api.schemas.executions import BatchResultOut

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], route_class=JsonRoute)
log = logging.getLogger(__name__)


def _items(body: bytes) -> list[Any]:
    """A JSON array the bulk path left (it starts with `[`): refused whole when it is not JSON,
    but for an item nested past the parser's depth limit, which alone is refused."""
    try:
        data: list[Any] = loads_mended(body)
    except orjson.JSONDecodeError as exc:
        items = batch_bulk.array_items(body) if exc.msg.startswith("depth limit exceeded") else None
        if items is None:
            raise decode_error(exc) from exc
        return items
    return data


_JSON_SPACE = b" \t\r\n"


class _OneDocument:
    """A JSON-typed body that does not start with `[`: NDJSON when its first line is a JSON
    document of its own. A body that is one JSON document spread over lines (a pretty-printed run
    object) is a batch of one, as on one line: it was read as NDJSON of broken lines, a 200
    refusing each. One line that is not JSON is a 422, as a broken array is; other lines that are
    not one document stay NDJSON, each judged. Kept only until the body is plainly NDJSON."""

    def __init__(self) -> None:
        self.body: bytearray | None = bytearray()
        self._line_start = 0
        self._spread = False  # the first line is not a document: the body is read as one

    def see(self, piece: bytes) -> None:
        if self.body is None:
            return
        scan = len(self.body)
        self.body += piece
        while not self._spread:
            end = self.body.find(b"\n", scan)
            if end < 0:
                return
            line = bytes(self.body[self._line_start : end])
            self._line_start = scan = end + 1
            if not line.strip(_JSON_SPACE):  # JSON's whitespace: a line of \x0c is a line
                continue
            try:
                loads_mended(line)
            except orjson.JSONDecodeError:
                self._spread = True
            else:
                self.body = None  # NDJSON: its lines are judged one by one
                return

    def as_one_line(self) -> bytes | None:
        """The body on one line when it is one document spread over lines, None when the feed
        already holds it as it should be read; a 422 for one line that is not JSON."""
        if self.body is None:
            return None
        body = bytes(self.body)
        try:
            loads_mended(body)
        except orjson.JSONDecodeError as exc:
            if sum(1 for line in body.split(b"\n") if line.strip(_JSON_SPACE)) > 1:
                return None  # NDJSON whose first line is broken
            raise decode_error(exc) from exc
        # a raw newline can only be whitespace in JSON (inside a string it must be escaped)
        return body.replace(b"\n", b" ") if self._spread else None


NDJSON = "application/x-ndjson"
_BATCH_TYPES = frozenset({JSON, NDJSON})  # as the request body below declares them


@router.post(
    "/batch",
    response_model=BatchResultOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"type": "array", "items": ingest.ExecutionImport.model_json_schema()}},
                NDJSON: {"schema": {"type": "string"}},
            },
        }
    },
)
async def ingest_batch(request: Request, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Store many executions; each item is reported as stored or refused, with the reason."""
    content_type = request.headers.get("content-type", "")
    if not is_accepted(content_type, _BATCH_TYPES):  # without a body too: which shape is it?
        refuse(content_type, _BATCH_TYPES)
    pieces = request.stream()
    start = b""
    if media_type(content_type) != NDJSON:  # JSON, or a `+json` type: an array, read whole
        head: list[bytes] = []  # up to the first piece that is not all whitespace (no re-joining)
        async for piece in pieces:  # a JSON array when its first byte past whitespace is `[`
            head.append(piece)
            if piece.strip():
                break
        start = b"".join(head)
        if not start.strip():  # JSON, and nothing in it
            raise InvalidInput("the body is empty: send a JSON array of executions, or NDJSON")
        if start.lstrip()[:1] == b"[":
            body = start + b"".join([piece async for piece in pieces])
            result = await run_in_threadpool(_answer, batch_bulk.ingest_json_array, ctx, viewer, body)
            if result is not None:
                return result
            return await run_in_threadpool(_answer, ingest.ingest_batch, ctx, viewer, _items(body))
    # NDJSON: its chunks are prepared while the rest of the body arrives
    feed = batch_bulk.NdjsonFeed(ctx, viewer)
    document = _OneDocument() if start else None  # JSON-typed: one line is one document

    def take(piece: bytes) -> None:
        feed.add(piece)
        if document is not None:
            document.see(piece)

    try:
        take(start)
        async for piece in pieces:
            take(piece)
        one_line = document.as_one_line() if document is not None else None
    except BaseException:  # the client went away, or the body is not JSON: nothing is stored
        await run_in_threadpool(feed.abandon)
        raise
    if one_line is not None:  # one document spread over lines: read again as one line
        await run_in_threadpool(feed.abandon)
        feed = batch_bulk.NdjsonFeed(ctx, viewer)
        feed.add(one_line)
    return await run_in_threadpool(_answer, feed.finish)


def _answer(ingest_fn: Callable[..., ingest.BatchResult | None], *args: Any) -> Response | None:
    """The verdicts as JSON, written off the event loop by orjson (BatchResultOut's fields, in its
    order): FastAPI validating and writing 5,000 items took ~35 ms of the loop a batch."""
    result = ingest_fn(*args)
    return None if result is None else json_response(result)


class OpenWebUIImportIn(BaseModel):
    """One step of `flowhistory import openwebui` while this server holds the store."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")  # a typo ran a real step

    source: str = Field(
        alias="from", min_length=1, description="sqlite:////path/webui.db or postgresql://..."
    )
    max_chunks: int = Field(default=4, ge=1, le=100)


_SQLITE_HEADER = b"SQLite format 3\x00"
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")


def _checked_source(source: str) -> None:
    """The server opens a path from a request only when it is a SQLite file (its header), outside
    /proc, /sys and /dev, and not a file it holds a lock on (its store) unless an import here is
    reading it (a second import of one source was refused while the first read it); and it
    answers the same for a path that is missing, unreadable or something else, so an admin's
    request cannot tell which files exist (the CLI, importing locally, says more)."""
    if not source.startswith("sqlite:///"):
        return  # PostgreSQL, or a form the importer refuses by name
    path = source.removeprefix("sqlite:///")
    try:
        real = os.path.realpath(path)
        ok = os.path.isabs(path) and os.path.isfile(real)
        ok = ok and not any(real == d or real.startswith(d + "/") for d in _SYSTEM_DIRS)
        if ok and locked_here(real):
            # never opened here, as closing it would drop this process's locks on it: the store's
            # (refused), or SQLite's while an import reads this very file (a SQLite source, then)
            ok = importer.open_here(real)
        elif ok:
            with open(real, "rb") as fh:
                ok = fh.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except (OSError, ValueError):  # ValueError: a NUL in the path
        ok = False
    if not ok:
        raise InvalidInput(
            f"{source} is not an Open WebUI database: no readable SQLite file there", field="from"
        )


@router.post("/import/openwebui")
async def import_openwebui_step(body: OpenWebUIImportIn, viewer: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Admins: import the next chunks of Open WebUI's history (resumable; call until finished)."""
    _checked_source(body.source)
    try:
        summary = await run_in_threadpool(importer.import_step, ctx, body.source, max_chunks=body.max_chunks)
    except UpstreamFailed as exc:  # the driver's words (a remote's answer) go to the log, not back
        log.warning("import step: %s", exc.detail)
        where = importer.redacted(body.source)
        raise UpstreamFailed(f"cannot read Open WebUI's database {where}: the server's log says why") from exc
    out = asdict(summary)
    out["report"] = None
    return out
