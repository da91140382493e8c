"""Refuse request bodies over a limit with 413, without reading them whole into memory.

A declared Content-Length over the limit is refused before one byte of the body is read. A
body without one (chunked) is read only up to the limit: past it the request is refused, under
it the bytes read are handed on to the app. (Raising from inside the app would not do: FastAPI
turns errors while reading a body into a 400. FastAPI's own `max_body_size` answers a large
Content-Length in plain text, and the client parses every error as JSON.)
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics.core.jsonio import dumps


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await refuse(send, 400, "Content-Length is not a number")
                    return
        if declared is not None:
            if declared > self.max_bytes:
                await refuse(send, 413, self.message)
                return
            await self.app(scope, receive, send)  # the server enforces the declared length
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect  # the client went away (CatchAll records it)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await refuse(send, 413, self.message)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @property
    def message(self) -> str:
        return f"Request body is larger than the limit of {self.max_bytes} bytes"


async def refuse(send: Send, status: int, detail: str) -> None:
    body = dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
