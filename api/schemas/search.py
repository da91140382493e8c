"""Search request and answer shapes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from analytics.core.numbers import Count
from analytics.history.filters import ExecutionFilter
from analytics.history.search import ExecutionSort
from api.schemas.executions import ExecutionOut, ExecutionRowOut


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: ExecutionFilter = Field(default_factory=ExecutionFilter)
    sort: ExecutionSort = ExecutionSort.NEWEST
    limit: Count | None = Field(default=None, ge=1)
    cursor: str | None = Field(default=None, max_length=512)
    include_payloads: bool = False
    include_errors: bool = Field(
        default=False,
        description="each hit's first error message (`error_message`) and its node (`error_node`)",
    )


class CountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: ExecutionFilter = Field(default_factory=ExecutionFilter)


class SearchItemOut(ExecutionRowOut):
    """A `SearchHit`: its row's fields, and the full run when payloads were asked for."""

    execution: ExecutionOut | None = None
    error_node: str | None = None
    error_message: str | None = None


class SearchPageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    items: list[SearchItemOut]
    next_cursor: str | None
    total: int


class CountOut(BaseModel):
    count: int
