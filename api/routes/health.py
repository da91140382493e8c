"""Liveness and readiness without auth: load balancers, orchestrators and `make run` poll them.

`/health` is the cheap liveness check: the process answers. `/ready` says whether it can do its
work (analytics/core/readiness.py). Neither tells a caller more than the version string, so
neither asks for a token.
"""

from __future__ import annotations

from fastapi import APIRouter

from analytics.core import migrations, readiness
from api.dependencies import Ctx
from api.json_body import JsonRoute
from api.schemas.health import ReadyOut

router = APIRouter(tags=["health"], route_class=JsonRoute)


@router.get("/health")
def health(ctx: Ctx) -> dict[str, object]:
    """Is the service up, and at which schema version."""
    return {"status": "ok", "schema_version": migrations.head(), "store_open": not ctx.store.closed}


@router.get("/ready", response_model=ReadyOut)
def ready(ctx: Ctx) -> ReadyOut:
    """200 when the store is open, its schema current and the writer alive; else 503 whose
    `detail` names each part that is not (`not ready: migrations at 13, head is 14`)."""
    return ReadyOut.model_validate(readiness.check(ctx))
