"""Search request and answer shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.filters import ExecutionFilter
from analytics.pagination import Page
from analytics.search import ExecutionRow, ExecutionSort
from api.schemas.executions import ExecutionOut, execution_dict
from api.schemas.timestamps import epoch_seconds


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: ExecutionFilter = Field(default_factory=ExecutionFilter)
    sort: ExecutionSort = ExecutionSort.NEWEST
    limit: int | None = Field(default=None, ge=1)
    cursor: str | None = Field(default=None, max_length=512)
    include_payloads: bool = False


class CountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: ExecutionFilter = Field(default_factory=ExecutionFilter)


class SearchItemOut(BaseModel):
    id: str
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: int
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost: float | None
    flow_version: str | None
    replay_of: str | None
    execution: ExecutionOut | None = None


class SearchPageOut(BaseModel):
    items: list[SearchItemOut]
    next_cursor: str | None
    total: int


class CountOut(BaseModel):
    count: int


def _row(r: ExecutionRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "flow_id": r.flow_id,
        "user_id": r.user_id,
        "status": r.status,
        "execution_time": r.execution_time,
        "created_at": epoch_seconds(r.created_at),
        "tokens_in": r.tokens_in,
        "tokens_out": r.tokens_out,
        "tokens_estimated": r.tokens_estimated,
        "cost": r.cost,
        "flow_version": r.flow_version,
        "replay_of": r.replay_of,
        "execution": execution_dict(r.execution) if r.execution is not None else None,
    }


def search_page_dict(page: Page[ExecutionRow]) -> dict[str, Any]:
    return {"items": [_row(r) for r in page.items], "next_cursor": page.next_cursor, "total": page.total}
