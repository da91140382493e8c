"""A path holding a control character matches no route: 404, as any unknown path.

Starlette matches routes with `^...$`, and Python's `$` also matches before a final newline:
`DELETE /api/v1/flows/{id}/executions%0A` deleted the flow's runs, `GET /api/v1/flows/%0A`
listed flows. No route of ours has a control character in it, so such a path is refused
before routing.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
