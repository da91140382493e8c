"""The scheduler's jobs as the API shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.schemas.timestamps import UtcDateTime


class JobOut(BaseModel):
    name: str
    every_s: float
    running: bool
    runs: int
    failures: int
    skipped: int
    last_skipped: str | None
    last_started: UtcDateTime | None
    last_finished: UtcDateTime | None
    last_duration_s: float | None
    last_ok: bool | None
    last_result: Any
    last_error: str | None
    next_run: UtcDateTime | None
