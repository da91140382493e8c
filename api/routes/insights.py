"""Placeholder router: filled by the insights work (issue 3)."""

from __future__ import annotations

from fastapi import APIRouter

from api.json_body import JsonRoute

router = APIRouter(prefix="/api/v1", tags=["insights"], route_class=JsonRoute)
