"""The router's trailing-slash redirects (`/api/v1/flows` -> `/api/v1/flows/`) name only the path.

Starlette writes an absolute URL built from the request's Host header, which the client sets:
`Host: evil.example` got `Location: http://evil.example/api/v1/flows/`, an answer a cache in
front could keep and serve to others. A path-only Location is valid (RFC 9110 10.2.2) and keeps
the client on the host it asked. This server makes no other redirect.

A DELETE is never redirected: `DELETE .../executions/` (a run's id left empty, or `%2F`) was
sent on to `DELETE .../executions`, which deletes every run of the flow, and clients follow a
307 with the same method. It gets a 404 in words instead; nothing is deleted.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NOT_REDIRECTED = json.dumps(
    {
        "detail": "Not Found: no DELETE at this path. It ends in a slash (an empty id?), and a"
        " DELETE is never redirected to the path without it: nothing was deleted"
    }
).encode()


def path_only(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    return urlunsplit(("", "", parts.path or "/", parts.query, "")).encode("latin-1")


class RelativeRedirects:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        refused = False

        async def relative(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                if scope.get("method") == "DELETE":
                    refused = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 404,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(_NOT_REDIRECTED)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": _NOT_REDIRECTED})
                    return
                message["headers"] = [
                    (name, path_only(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", ())
                ]
            if not refused:  # the redirect's own body goes nowhere
                await send(message)

        await self.app(scope, receive, relative)
