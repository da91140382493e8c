"""Prices and cost report shapes."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from analytics.core.numbers import Number
from analytics.cost.prices import MAX_PRICE, Price


def _a_date_not_a_number(value: Any) -> Any:
    """pydantic read 0 as 1970-01-01 (a number of seconds): a date is written as a date."""
    if isinstance(value, int | float):
        raise ValueError("a date is written YYYY-MM-DD (2026-01-01), not as a number")
    return value


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_pattern: str = Field(min_length=1, max_length=200, description="glob, e.g. gpt-4o-mini*")
    input_per_million: Number = Field(ge=0, le=MAX_PRICE, description="USD per million input tokens")
    output_per_million: Number = Field(ge=0, le=MAX_PRICE, description="USD per million output tokens")
    valid_from: Annotated[date, BeforeValidator(_a_date_not_a_number)] = Field(
        description="the first day the price applies, ISO 8601 (2026-01-01)"
    )

    def to_price(self) -> Price:
        return Price(self.model_pattern, self.input_per_million, self.output_per_million, self.valid_from)


class PriceOut(PriceIn):
    model_config = ConfigDict(from_attributes=True)


class PricesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: list[PriceIn] = Field(max_length=10_000)


class RecomputeOut(BaseModel):
    repriced_runs: int


class CostRowOut(BaseModel):
    """Node runs at model or node level, with the status of the run they belong to."""

    group: str
    runs: int
    successful_runs: int
    error_runs: int = Field(description="failed runs: status error (as failure_rate counts them)")
    aborted_runs: int = Field(description="cancelled runs; not failures")
    cost: float | None
    error_cost: float | None = Field(
        description="USD burned by error runs: 0 with none, null when none of them has a known cost"
    )
    aborted_cost: float | None = Field(
        description="USD burned by aborted runs: 0 with none, null when none of them has a known cost"
    )
    cost_per_run: float | None
    cost_per_success: float | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    unpriced_runs: int = Field(
        description="rows with a model whose cost is unknown (no price matches it, or no token counts);"
        " a row without a model owes nothing and is not counted"
    )
    partly_unpriced_runs: int | None = Field(
        default=None,
        description="by flow or user: runs whose cost is known but leaves out a model node whose cost"
        " is unknown (their cost is a lower bound); null at model and node level",
    )
    flow_id: str | None = Field(default=None, description="group_by=flow_node: the node's flow; else null")
