"""Headers every answer carries so a browser does not misuse it.

The dashboard keeps its credential in the page and offers Delete buttons: another site must not
frame it and trick clicks (`X-Frame-Options`, CSP `frame-ancestors`), and a JSON answer or a
download must not be sniffed into HTML a browser would run (`nosniff`). No page of ours is meant
to be framed, and none sends a referrer worth keeping (`no-referrer` keeps a run's id in the
dashboard's URL away from links it shows).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *((n, v) for n, v in HEADERS if n not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
