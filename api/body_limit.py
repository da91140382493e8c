"""Refuse a declared Content-Length over the limit with a JSON 413, before reading the body.

FastAPI's `max_body_size` (Starlette's RequestBodyLimitMiddleware) counts streamed bodies and
answers JSON, but answers an oversized Content-Length in plain text; the client parses every
error as JSON, so that case is answered here first.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


class DeclaredLengthLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    await _refuse(send, f"Request body is larger than the limit of {self.max_bytes} bytes")
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})
