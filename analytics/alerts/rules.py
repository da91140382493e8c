"""The alert rule: what is measured, where, over which window, and when it alerts.

Validation names the bad field, so the API's 422 says which one: cross-field checks (the
recovery threshold on the healthy side of the alert threshold, the warning threshold before
it) run as field validators of the later field, not as a model validator, for that reason.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from analytics.core.form_fields import KEEP, not_blank, refuse_null
from analytics.core.numbers import Count, Number, not_bool

MAX_WINDOW_S = 90 * 86_400
# ASCII digits: `\d` took an Arabic-Indic one and "h" as an hour, which the document's pattern refuses
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*\Z", re.ASCII)
_UNIT_S = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}


class Metric(StrEnum):
    FAILURE_RATE = "failure_rate"  # error runs / runs (aborted runs count as runs, not failures)
    ERROR_COUNT = "error_count"
    RUN_COUNT = "run_count"
    P95_DURATION = "p95_duration"  # ms, exact (quantile_cont), of execution_time or node duration
    COST = "cost"  # USD, sum over the window


class Operator(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"

    @property
    def upward(self) -> bool:
        """True when larger values are worse (gt/ge)."""
        return self in (Operator.GT, Operator.GE)

    def holds(self, value: float, threshold: float) -> bool:
        match self:
            case Operator.GT:
                return value > threshold
            case Operator.GE:
                return value >= threshold
            case Operator.LT:
                return value < threshold
            case Operator.LE:
                return value <= threshold


class NoDataMode(StrEnum):
    OK = "ok"  # no runs is healthy
    KEEP_LAST = "keep_last"  # keep whatever state the rule was in
    NO_DATA = "no_data"  # say so: state NO_DATA (notified)


class State(StrEnum):
    OK = "OK"
    PENDING = "PENDING"
    WARNING = "WARNING"
    FIRING = "FIRING"
    NO_DATA = "NO_DATA"
    PAUSED = "PAUSED"


def parse_duration(value: Any) -> Any:
    """Seconds as a number, or text such as "90s", "15m", "1h", "1d", "2w"."""
    not_bool(value)  # true read as 1 s
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("a duration is seconds or a number with s, m, h, d or w (e.g. '15m')")
        if len(match.group(1)) > 30:  # past any bound a field sets, and int()'s digit limit
            raise ValueError("a duration is at most 30 digits long")
        # exact: a float turns 309 digits into infinity (a 500) and rounds 17 digits
        seconds = Fraction(match.group(1)) * _UNIT_S[match.group(2)]
        if seconds.denominator != 1:
            raise ValueError("a duration is a whole number of seconds")
        return int(seconds)
    return value


# what the OpenAPI document says a duration field takes: seconds, or the text forms (it said
# integer only, and a client checking against it refused the README's "1h")
DURATION_TEXT = Annotated[str, Field(pattern=r"^\s*\d+(\.\d+)?\s*(s|m|min|h|d|w)?\s*$")]
Duration = Annotated[
    int,
    BeforeValidator(
        parse_duration, json_schema_input_type=Annotated[int, Field(ge=0, le=MAX_WINDOW_S)] | DURATION_TEXT
    ),
]


# what a stored rule's name is; a caller's new one says something too (RuleName): spaces alone
# passed min_length=1, a rule the list and every message named with nothing. A rule stored
# before that is still read (Rule, the answer's RuleOut), or its flow's alerting stopped.
StoredName = Annotated[str, Field(min_length=1, max_length=200)]
RuleName = Annotated[StoredName, AfterValidator(not_blank)]


class RuleCreate(BaseModel):
    """A rule as a caller writes it; scope is `flow_id` or `owned_by` (every flow that user owns)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: RuleName
    metric: Metric
    flow_id: str | None = Field(default=None, min_length=1)
    owned_by: str | None = Field(
        default=None, min_length=1, validate_default=True, description="all flows this user owns, per flow"
    )
    flow_version: str | None = Field(default=None, min_length=1)
    node_id: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    window: Duration = Field(gt=0, le=MAX_WINDOW_S, description="seconds, or '15m', '1h', '1d'")
    operator: Operator = Operator.GT
    threshold: Number
    warning_threshold: Number | None = None
    recovery_threshold: Number | None = None
    pending_for: Duration = Field(default=0, ge=0, le=MAX_WINDOW_S)
    keep_firing_for: Duration = Field(default=0, ge=0, le=MAX_WINDOW_S)
    min_runs: Count = Field(default=1, ge=0)
    no_data: NoDataMode = NoDataMode.NO_DATA
    renotify_every: Duration | None = Field(default=None, gt=0, le=MAX_WINDOW_S)
    channel_ids: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("owned_by")
    @classmethod
    def _one_scope(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_flow = info.data.get("flow_id") is not None
        if has_flow and value is not None:
            raise ValueError("give flow_id or owned_by, not both")
        if not has_flow and value is None and "flow_id" in info.data:
            raise ValueError("a rule needs a scope: flow_id, or owned_by for every flow a user owns")
        return value

    @field_validator("flow_version")
    @classmethod
    def _version_needs_flow(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("flow_id") is None:
            raise ValueError("flow_version needs flow_id: versions belong to one flow")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold_in_range(cls, value: float, info: ValidationInfo) -> float:
        return _check_range(value, info)

    @field_validator("warning_threshold")
    @classmethod
    def _warning_before_alert(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None or (against := _alert_side(value, info)) is None:
            return value
        op, threshold = against
        if op.upward and not value < threshold:
            raise ValueError(f"must be below the alert threshold {threshold:g} for operator {op.value}")
        if not op.upward and not value > threshold:
            raise ValueError(f"must be above the alert threshold {threshold:g} for operator {op.value}")
        return value

    @field_validator("recovery_threshold")
    @classmethod
    def _recovery_on_healthy_side(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None or (against := _alert_side(value, info)) is None:
            return value
        op, threshold = against
        if op.upward and value > threshold:
            raise ValueError(
                f"must be at or below the alert threshold {threshold:g} for operator {op.value}"
                " (fire above it, resolve only below the recovery threshold)"
            )
        if not op.upward and value < threshold:
            raise ValueError(f"must be at or above the alert threshold {threshold:g} for operator {op.value}")
        return value

    @field_validator("channel_ids")
    @classmethod
    def _unique_channels(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def _check_range(value: float, info: ValidationInfo) -> float:
    metric = info.data.get("metric")
    if metric == Metric.FAILURE_RATE and not 0 <= value <= 1:
        raise ValueError("failure_rate is a fraction from 0 to 1")
    if metric is not None and value < 0:
        raise ValueError(f"{metric.value} is never negative")
    return value


def _alert_side(value: float, info: ValidationInfo) -> tuple[Operator, float] | None:
    """A second threshold (warning, recovery) in range; the operator and alert threshold it is
    judged against, None when either of those failed validation already."""
    _check_range(value, info)
    op, threshold = info.data.get("operator"), info.data.get("threshold")
    return None if op is None or threshold is None else (op, threshold)


class RuleUpdate(BaseModel):
    """Fields to change; the merged rule is validated again as a whole. `null` clears a field
    that may be empty (a scope, a threshold, renotify_every); the others cannot be null, and the
    document says so (`KEEP`: it declared every field nullable)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str | None = KEEP
    metric: Metric | None = KEEP
    flow_id: str | None = None
    owned_by: str | None = None
    flow_version: str | None = None
    node_id: str | None = None
    model: str | None = None
    window: Duration | None = KEEP
    operator: Operator | None = KEEP
    threshold: Number | None = KEEP
    warning_threshold: Number | None = None
    recovery_threshold: Number | None = None
    pending_for: Duration | None = KEEP
    keep_firing_for: Duration | None = KEEP
    min_runs: Count | None = KEEP
    no_data: NoDataMode | None = KEEP
    renotify_every: Duration | None = None
    channel_ids: list[str] | None = KEEP

    _no_null = field_validator(
        "name",
        "metric",
        "window",
        "operator",
        "threshold",
        "pending_for",
        "keep_firing_for",
        "min_runs",
        "no_data",
        "channel_ids",
        mode="before",
    )(refuse_null)


class Rule(RuleCreate):
    """A stored rule."""

    name: StoredName
    id: str
    created_by: str
    paused: bool = False
    created_at: datetime
    updated_at: datetime

    @property
    def level(self) -> str:
        """ "node" when the rule looks at node runs (a node or a model), else "run"."""
        return "node" if self.node_id is not None or self.model is not None else "run"

    @property
    def recovery(self) -> float:
        return self.threshold if self.recovery_threshold is None else self.recovery_threshold
