"""Retention shapes: policies, the dry run, pass and restore results, the run log."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from analytics.core.clock import UtcTime
from analytics.core.numbers import Count, Number
from analytics.retention.policies import MAX_DAYS, MAX_KEEP, Policy
from api.schemas.jobs import JobOut
from api.schemas.timestamps import UtcDateTime


class PolicyIn(BaseModel):
    """A whole policy (omitted rules mean no limit). A flow's policy replaces the global one."""

    model_config = ConfigDict(extra="forbid")

    max_age_days: Number | None = Field(
        default=None,
        gt=0,
        le=MAX_DAYS,
        allow_inf_nan=False,
        description="delete successful runs older than this",
    )
    failed_max_age_days: Number | None = Field(
        default=None,
        gt=0,
        le=MAX_DAYS,
        allow_inf_nan=False,
        description="error/aborted runs: at least max_age_days (default: max_age_days)",
    )
    keep_last: Count | None = Field(
        default=None, ge=1, le=MAX_KEEP, description="keep at most the newest N runs"
    )
    payload_ttl_days: Number | None = Field(
        default=None,
        gt=0,
        le=MAX_DAYS,
        allow_inf_nan=False,
        description="drop inputs, outputs and node_results of older runs; metrics, nodes, errors stay",
    )
    archive: StrictBool = Field(  # 0 was read as false
        default=True, description="write removed runs to the Parquet archive first"
    )

    def to_policy(self) -> Policy:
        return Policy(**self.model_dump())


class PolicyOut(PolicyIn):
    flow_id: str | None = Field(description="null for the global policy")
    updated_by: str | None
    updated_at: UtcDateTime | None
    inherited: bool = Field(
        description="true when the flow has no policy of its own (the global one applies)"
    )


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: PolicyIn | None = Field(
        default=None, description="plan with this policy instead of the stored one"
    )
    ids_limit: Count = Field(default=1000, ge=0, le=100_000, description="ids listed at most, in all")
    now: UtcTime | None = Field(
        default=None, description="plan as of this time (default: now); ISO 8601 or epoch seconds (a number)"
    )


class FlowPlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    flow_id: str
    delete: int
    trim: int
    delete_ids: list[str]
    trim_ids: list[str]
    delete_by_status: dict[str, int] = Field(
        description="runs to delete per status (success, error, aborted)"
    )


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    now: UtcDateTime
    delete: int
    trim: int
    flows: list[FlowPlanOut]
    ids_limit: int
    ids_truncated: bool


class RunStarted(BaseModel):
    """The pass's result when it ran here, or the scheduler job's state."""

    ran: bool
    result: dict[str, Any] | None = None
    job: JobOut | None = None


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: UtcTime = Field(description="inclusive; ISO 8601 (UTC when no offset is given) or epoch seconds")
    end: UtcTime = Field(description="exclusive")
    flow_id: str | None = Field(default=None, min_length=1, max_length=255)


class RunRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    trigger: str
    started_at: UtcDateTime
    finished_at: UtcDateTime
    ok: bool
    error: str | None
    summary: dict[str, Any]


class StatusOut(BaseModel):
    running: str | None = Field(description="what runs now in this server: retention, compact, restore")
    job: JobOut | None = Field(description="the scheduler's `retention` job, when the server has one")
    last: RunRecordOut | None
