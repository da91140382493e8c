"""Placeholder router: filled by the trends work (issue 3)."""

from __future__ import annotations

from fastapi import APIRouter

from api.json_body import JsonRoute

router = APIRouter(prefix="/api/v1", tags=["trends"], route_class=JsonRoute)
