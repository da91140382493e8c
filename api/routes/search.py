"""Placeholder router: filled by the search work (issue 3)."""

from __future__ import annotations

from fastapi import APIRouter

from api.json_body import JsonRoute

router = APIRouter(prefix="/api/v1", tags=["search"], route_class=JsonRoute)
