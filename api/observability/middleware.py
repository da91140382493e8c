"""One ASGI middleware per request: its id, its timing by route template, its access line.

Labels use the route's template (`/api/v1/flows/{flow_id}/executions`), never the raw path: a
label per flow or run id would grow without bound. The access line is written after the
response has been sent, with the user id the auth dependency put on `request.state`; it never
holds headers, query strings or bodies (tokens travel in them).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import CLIENT_GONE
from api.observability.logs import ACCESS_LOGGER

REQUEST_ID_HEADER = b"x-request-id"
# an incoming id is kept only when short and plain: it is echoed and written to the logs
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED = "<unmatched>"  # a path no route knows (404s): one label for all of them
# nginx's code for a request whose client went away before it could be answered: recorded (never
# sent), so a client that hangs up mid-body is not counted as a server error
CLIENT_CLOSED_REQUEST = 499

access_log = logging.getLogger(ACCESS_LOGGER)
Observe = Callable[[str, str, int, float], None]  # (method, route, status, seconds)


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    return path if isinstance(path, str) else UNMATCHED


def request_id_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _SAFE_ID.fullmatch(value):
                decoded: str = value.decode()
                return decoded
            break
    return uuid.uuid4().hex


class Observability:
    """Outermost middleware: times the whole request, errors answered by CatchAll included."""

    def __init__(self, app: ASGIApp, *, observe: Observe | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id_of(scope)
        header = (REQUEST_ID_HEADER, rid.encode())
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 500  # unless a response starts: the client saw the connection drop

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if state.get(CLIENT_GONE) and status == 500:
                status = CLIENT_CLOSED_REQUEST
            seconds = time.perf_counter() - started
            route = route_of(scope)
            method = scope["method"]
            answered(self.observe, method, route, status, seconds, state.get("user_id"), rid)


def answered(
    observe: Observe | None, method: str, route: str, status: int, seconds: float, user: str | None, rid: str
) -> None:
    """Count a request and write its access line: for the app's requests, and for those the
    server answers before the app sees them (api/server.py: 400, 408, 414)."""
    if observe is not None:
        observe(method, route, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        ms = round(seconds * 1000, 3)
        access_log.info(
            "%s %s %d %.3fms user=%s rid=%s",
            method,
            route,
            status,
            ms,
            user or "-",
            rid,
            extra={
                "request_id": rid,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": ms,
                "user_id": user,
            },
        )
