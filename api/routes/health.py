"""Liveness and readiness without auth: load balancers, orchestrators and `make run` poll them.

`/health` is the cheap liveness check: the process answers. `/ready` says whether it can do its
work: the store is open, its schema is at this code's head, and the writer thread runs. Neither
tells anything a caller could not learn from the version string, so neither asks for a token.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from analytics.core import migrations
from analytics.core.context import Context
from api.dependencies import Ctx
from api.json_body import JsonRoute

router = APIRouter(tags=["health"], route_class=JsonRoute)


@router.get("/health")
def health(ctx: Ctx) -> dict[str, object]:
    """Is the service up, and at which schema version."""
    return {"status": "ok", "schema_version": migrations.head(), "store_open": not ctx.store.closed}


def readiness(ctx: Context | None) -> dict[str, str]:
    """Each part's state; ready when they read open, current, alive."""
    if ctx is None or ctx.store.closed:
        return {"store": "closed", "migrations": "unknown", "writer": "stopped"}
    try:
        version = ctx.store.read(migrations.version)
    except Exception as exc:  # a store that cannot answer is not ready; say which part
        return {
            "store": f"unreadable: {type(exc).__name__}",
            "migrations": "unknown",
            "writer": "alive" if ctx.store.writer_alive else "stopped",
        }
    head = migrations.head()
    state = "current" if version == head else f"at {version}, head is {head}"
    return {"store": "open", "migrations": state, "writer": "alive" if ctx.store.writer_alive else "stopped"}


@router.get(
    "/ready",
    responses={503: {"description": "Not ready: the body says which part (store, migrations, writer)"}},
)
def ready(request: Request) -> JSONResponse:
    """200 `{"ready": true, "store": "open", "migrations": "current", "writer": "alive"}`, or 503
    with the same keys naming the part that is not ready."""
    parts = readiness(getattr(request.app.state, "ctx", None))
    ok = parts == {"store": "open", "migrations": "current", "writer": "alive"}
    return JSONResponse({"ready": ok, **parts}, status_code=200 if ok else 503)
