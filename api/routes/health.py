"""Liveness without auth: load balancers and `make run` poll it."""

from __future__ import annotations

from fastapi import APIRouter

from analytics.core import migrations
from api.dependencies import Ctx
from api.json_body import JsonRoute

router = APIRouter(tags=["health"], route_class=JsonRoute)


@router.get("/health")
def health(ctx: Ctx) -> dict[str, object]:
    """Is the service up, and at which schema version."""
    return {"status": "ok", "schema_version": migrations.head(), "store_open": not ctx.store.closed}
