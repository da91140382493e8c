"""Insight shapes: per-node breakdown, failure signatures, reliability, versions, anomalies.

Timestamps are epoch seconds, as everywhere in the contract's API. Rows come from analytics as
Arrow tables; a `TableOf(Model)` response model reads one row by row.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.timestamps import EpochSeconds


def _table_rows(value: Any) -> Any:
    return value.to_pylist() if isinstance(value, pa.Table) else value


def TableOf(model: type[BaseModel]) -> Any:
    """A response_model reading an Arrow table: one `model` per row."""
    return Annotated[list[model], BeforeValidator(_table_rows)]  # type: ignore[valid-type]


class NodeBreakdownOut(BaseModel):
    node_id: str
    node_type: str | None
    model: str | None
    runs: int
    errors: int
    failure_rate: float
    timed_runs: int = Field(description="runs where the node reported a duration; 0 = never timed")
    total_ms: int | None
    p50_ms: float | None
    p95_ms: float | None
    share_p50: float | None = Field(
        description="median over runs of node duration / run execution_time (null when untimed)"
    )
    share_p95: float | None = Field(description="95th percentile over runs of the same ratio")
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool = Field(description="some token counts were estimated from text length")
    cost: float | None
    cost_per_run: float | None


class FailureSignatureOut(BaseModel):
    node_id: str = Field(description='the failing node, or "global" for run-level errors')
    signature: str
    count: int
    first_seen: EpochSeconds
    last_seen: EpochSeconds
    example: str = Field(description="the latest raw message")
    last_24h: int
    last_7d: int
    prev_7d: int = Field(description="the 7 days before last_7d")
    trend: Literal["rising", "falling", "steady", "quiet"]


class ReliabilityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    as_of: EpochSeconds
    runs: int
    success_count: int
    error_count: int
    aborted_count: int
    last_success_at: EpochSeconds | None
    seconds_since_last_success: float | None
    last_failure_at: EpochSeconds | None
    current_failure_streak: int
    current_streak_started_at: EpochSeconds | None
    longest_failure_streak: int
    longest_streak_started_at: EpochSeconds | None
    recovered_streaks: int
    mttr_seconds: float | None = Field(
        description="mean time from a streak's first failure to the next success"
    )


class VersionOut(BaseModel):
    flow_version: str
    runs: int
    errors: int
    failure_rate: float
    p50_ms: float
    p95_ms: float
    cost_per_run: float | None
    first_seen: EpochSeconds
    last_seen: EpochSeconds
    previous_version: str | None
    failure_rate_change: float | None
    p50_change_ms: float | None
    p95_change_ms: float | None
    cost_per_run_change: float | None
    enough_runs: bool | None = Field(description="both versions have at least min_runs runs")
    failure_rate_z: float | None
    failure_rate_p_value: float | None = Field(description="two-proportion z-test, two-sided")
    failure_rate_significant: bool | None
    duration_z: float | None
    duration_p_value: float | None = Field(
        description="Mann-Whitney U, normal approximation with tie and continuity corrections"
    )
    duration_significant: bool | None
    significant: bool = Field(description="either test flags the change; false for the first version")
    regressed: bool = Field(description="a flagged change for the worse: fails more or runs slower")


class AnomalyOut(BaseModel):
    execution_id: str
    created_at: EpochSeconds
    value: float = Field(description="execution_time in ms, or cost in USD")
    median: float = Field(description="median of the baseline (the previous `window` runs)")
    mad: float = Field(description="median absolute deviation of the baseline")
    mean_ad: float | None = Field(description="mean absolute deviation, used only when mad is 0")
    baseline_runs: int
    robust_z: float = Field(description="0.6745 (value - median) / mad; sign gives the direction")
