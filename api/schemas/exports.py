"""Export run and status shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas.timestamps import UtcDateTime


class TableStats(BaseModel):
    partitions: int = 0
    files: int = 0
    bytes: int = 0
    rows: int | None = Field(
        default=None, description="runs (executions) or node rows; none for compaction-only numbers"
    )
    max_files_per_partition: int = 0


class CycleOut(BaseModel):
    started_at: UtcDateTime
    finished_at: UtcDateTime
    duration_s: float
    ok: bool
    error: str | None = None
    summary: dict[str, Any] | None = None


class ExportStatusOut(BaseModel):
    target: str = Field(description="the folder or s3:// URL exported to (no credentials)")
    schema_version: int
    ok: bool | None = Field(description="did the last export cycle succeed; null before the first")
    error: str | None = Field(description="the last cycle's error, when it failed")
    failures_since_ok: int
    last_cycle: CycleOut | None
    last_ok_cycle: CycleOut | None
    last_compaction: CycleOut | None
    tables: dict[str, TableStats]


class ExportRunOut(BaseModel):
    result: dict[str, Any] | None = Field(description="what the cycle wrote, appended, rewrote and dropped")
    status: ExportStatusOut
