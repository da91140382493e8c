"""HEAD on every GET route, as HTTP asks (RFC 9110 9.3.2): the GET's status and headers, no body.

FastAPI routes only the methods they are declared with, so a HEAD (a monitor's probe of
`/health`, a client checking a download) was a 405. The request goes on as a GET; its body is
dropped here, and the server sends none for a HEAD anyway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of a streamed body: nothing to send
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            if "route" in as_get:  # the template it was routed to, for the metrics and access log
                scope["route"] = as_get["route"]
