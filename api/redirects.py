"""The router's trailing-slash redirects (`/api/v1/flows` -> `/api/v1/flows/`) name only the path.

Starlette writes an absolute URL built from the request's Host header, which the client sets:
`Host: evil.example` got `Location: http://evil.example/api/v1/flows/`, an answer a cache in
front could keep and serve to others. A path-only Location is valid (RFC 9110 10.2.2) and keeps
the client on the host it asked. This server makes no other redirect.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message["headers"] = [
                    (name, path_only(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", ())
                ]
            await send(message)

        await self.app(scope, receive, relative)
