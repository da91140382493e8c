"""Prices and cost report shapes."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from analytics.cost import Price


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_pattern: str = Field(min_length=1, max_length=200, description="glob, e.g. gpt-4o-mini*")
    input_per_million: float = Field(ge=0, description="USD per million input tokens")
    output_per_million: float = Field(ge=0, description="USD per million output tokens")
    valid_from: date

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
    group: str
    runs: int
    successful_runs: int
    cost: float | None
    failed_cost: float | None
    cost_per_run: float | None
    cost_per_success: float | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    unpriced_runs: int
