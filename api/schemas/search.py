"""Search request and answer shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.history.filters import ExecutionFilter
from analytics.history.pagination import Page
from analytics.history.search import ExecutionSort, SearchHit
from api.schemas.executions import ExecutionOut, ExecutionRowOut, execution_dict, row_dict


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


class SearchItemOut(ExecutionRowOut):
    execution: ExecutionOut | None = None


class SearchPageOut(BaseModel):
    items: list[SearchItemOut]
    next_cursor: str | None
    total: int


class CountOut(BaseModel):
    count: int


def search_page_dict(page: Page[SearchHit]) -> dict[str, Any]:
    return {
        "items": [
            {**row_dict(h.row), "execution": execution_dict(h.execution) if h.execution is not None else None}
            for h in page.items
        ],
        "next_cursor": page.next_cursor,
        "total": page.total,
    }
