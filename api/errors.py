"""One table from analytics' error classes to HTTP status codes, and JSON for every error.

The client parses every error body as JSON, so even an unexpected failure answers
`{"detail": ...}`, never HTML. FastAPI's own 422 list form for validation stays as it is, but
an issue's `input` is cut at INPUT_MAX characters: a 20 MB value came back whole.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics.core.errors import (
    AccessDenied,
    Conflict,
    FlowHistoryError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Refused,
    StorageFull,
    StoreClosed,
    StoreLocked,
    TooManyRequests,
    UpstreamFailed,
)
from analytics.exports.sql_worker import SqlAnswerTooLarge, SqlOutOfMemory

log = logging.getLogger(__name__)

CLIENT_GONE = "client_gone"  # set in the request's state when it ended that way (status 499)
CUT_OFF = {
    "detail": "the server is stopping and this request did not finish within the grace it gives"
    " requests in flight: a write may or may not have taken effect; check, then send it again"
}

STATUS: dict[type[FlowHistoryError], int] = {
    Refused: 400,  # before its base InvalidInput: the nearest class in the MRO wins
    NotAuthenticated: 401,
    AccessDenied: 403,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    SqlOutOfMemory: 413,  # an ad-hoc SQL query past its memory cap (a time limit is a 422)
    SqlAnswerTooLarge: 413,  # or its answer past the size the server takes back
    StoreClosed: 503,
    StoreLocked: 503,
    UpstreamFailed: 502,
    StorageFull: 507,
    TooManyRequests: 429,
}


def status_for(exc: FlowHistoryError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


# What each error status means, as the OpenAPI says it (api/openapi.py declares them per
# operation). Every one answers `{"detail": ...}`; 413 comes from api/body_limit.py, 422 also
# from FastAPI's request validation.
DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be read",
    401: "No credential, or an invalid or expired one, or a pending user",
    403: "A verified user without access (to this flow, or not an admin)",
    404: "No such thing, or not one the caller may see",
    409: "Conflicts with what is stored or running now",
    413: "The request body is larger than the server's limit (or an SQL query needed more memory, or answered more, than it may)",
    414: "The request's URL is longer than the server reads (65,535 bytes)",
    415: "The request body is not of a type the operation reads (JSON; NDJSON where declared), or is compressed",
    422: "The request does not fit its schema (a list of issues), or means something impossible (a message)",
    429: "Asked more often than the action may run: `Retry-After` says in how many seconds",
    502: "A system the server writes to failed (the export target): the detail says how",
    503: "The store is closed or locked (the server is stopping or starting)",
    507: "The store's disk is full: nothing of the write was stored; reads work, admins may delete",
}


async def _flowhistory_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlowHistoryError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"detail": exc.detail}, status_code=status, headers=headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)  # no internals: they are logged


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """A 405 whose Allow names every method the path takes: the router answers with the first
    route that fits the path only (`POST /api/v1/prices` was told `Allow: GET`, not `GET, PUT`)."""
    assert isinstance(exc, HTTPException)
    routes = request.app.router.routes
    allowed = [
        m for m in _METHODS if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)
    ]
    if "GET" in allowed:
        allowed.insert(1, "HEAD")  # answered as the GET (api/head_requests.py)
    detail = f"{request.method} is not allowed here; this path takes {', '.join(allowed)}"
    return JSONResponse({"detail": detail}, status_code=405, headers={"Allow": ", ".join(allowed)})


INPUT_MAX = 1_000  # characters of a refused value echoed in a 422's `input`
TOO_DEEP = "… (nested too deep to echo)"


def _cut(value: Any) -> Any:
    """A refused input as the 422 echoes it: whole when short, else its first INPUT_MAX
    characters (as JSON text when it is not a string) and "…"."""
    if isinstance(value, str):
        return value if len(value) <= INPUT_MAX else value[:INPUT_MAX] + "…"
    if isinstance(value, bool | int | float) or value is None:
        return value
    try:
        text = orjson.dumps(jsonable_encoder(value)).decode()
    except (TypeError, RecursionError):  # nested past orjson's 254 levels: the 422 was a 500
        return TOO_DEEP
    return value if len(text) <= INPUT_MAX else text[:INPUT_MAX] + "…"


NOT_UTF8 = "the body is not UTF-8: JSON is read as UTF-8, whatever charset the Content-Type names"


def _issue(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue as answered: its input, location and message cut; a body in another encoding (latin-1, UTF-16) said so
    in words, where orjson's "str is not valid UTF-8: surrogates not allowed" misled."""
    out = {**issue, "input": _cut(issue["input"])} if "input" in issue else dict(issue)
    # an unknown key is named in `loc` (and a query's in `msg`): a 2 MB key came back whole
    out["loc"] = [_cut(part) if isinstance(part, str) else part for part in out.get("loc", ())]
    if isinstance(out.get("msg"), str):
        out["msg"] = _cut(out["msg"])
    error = (out.get("ctx") or {}).get("error")
    if out.get("type") == "json_invalid" and isinstance(error, str) and "not valid UTF-8" in error:
        out["ctx"] = {**out["ctx"], "error": NOT_UTF8}
    return out


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [_issue(e) for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(issues)}, status_code=422)


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(FlowHistoryError, _flowhistory_error)
    app.add_exception_handler(405, _method_not_allowed)
    app.add_exception_handler(Exception, _unexpected)


class CatchAll:
    """ASGI middleware: an unexpected error ends with its JSON 500, and the connection stays usable.

    Starlette's ServerErrorMiddleware (outside every added middleware) answers through the
    handler above and then re-raises; uvicorn then drops the kept-alive connection without
    `Connection: close`, so the client's next request on it failed. Caught here, the error ends
    with the answer. Once a response has started (a stream failing midway) there is nothing to
    answer: it re-raises, and closing the connection is right for a cut-off body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except ClientDisconnect:
            # the client left (or the server cut off a malformed or too slow body, answering it
            # itself): there is no one to answer, and it is not the server's error
            log.info(
                "the client went away before its request was read: %s %s", scope["method"], scope["path"]
            )
            scope.setdefault("state", {})[CLIENT_GONE] = True
        except asyncio.CancelledError:
            # only uvicorn's stop cancels a request: past the grace SIGTERM gives requests in
            # flight (a slow body, a long export or query). It answered a plain-text 500 and
            # logged a traceback; this is the stop, said in JSON, and the task then ends
            if started:
                raise
            log.warning("stopping: %s %s was cut off before its answer", scope["method"], scope["path"])
            response = JSONResponse(CUT_OFF, status_code=503, headers={"Connection": "close"})
            await response(scope, receive, send)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)
