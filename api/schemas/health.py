"""Readiness, for orchestrators."""

from __future__ import annotations

from pydantic import BaseModel


class ReadyOut(BaseModel):
    ready: bool
    store: str
    migrations: str
    writer: str
    openwebui: str = "not used"
