"""Silences: mute the notifications of a rule, or of every rule on a flow, for a while.

A silence mutes notifications, not evaluation: the engine still judges, stores states and
transitions, and records each notification it held back as suppressed ("silenced by <id>").
When a silence ends while a rule still fires (or warns, or has no data), the next evaluation
sends that state once, as Alertmanager does: receivers learn what they missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from analytics.alerts.rules import DURATION_TEXT, parse_duration
from analytics.core.clock import UtcTime, utc_now
from analytics.core.errors import InvalidInput
from analytics.core.form_fields import not_blank

MAX_SILENCE_S = 30 * 86_400  # longer than a month is a paused rule, not a silence
SilenceDuration = Annotated[
    int,
    BeforeValidator(
        parse_duration, json_schema_input_type=Annotated[int, Field(gt=0, le=MAX_SILENCE_S)] | DURATION_TEXT
    ),
]


class SilenceCreate(BaseModel):
    """What a caller writes: `rule_id` or `flow_id`; `ends_at` or `duration`; why, in `comment`."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str | None = Field(default=None, min_length=1)
    flow_id: str | None = Field(
        default=None, min_length=1, validate_default=True, description="every rule judging this flow"
    )
    starts_at: UtcTime | None = Field(default=None, description="default: now")
    ends_at: UtcTime | None = None
    duration: SilenceDuration | None = Field(
        default=None,
        gt=0,
        le=MAX_SILENCE_S,
        validate_default=True,
        description="seconds, or '15m', '2h', '1d'; instead of ends_at",
    )
    # spaces alone are no reason (they passed min_length=1, though an empty comment is refused)
    comment: Annotated[str, AfterValidator(not_blank)] = Field(
        min_length=1, max_length=1000, description="why, for whoever sees the silence"
    )

    @field_validator("flow_id")
    @classmethod
    def _one_target(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_rule = info.data.get("rule_id") is not None
        if has_rule and value is not None:
            raise ValueError("give rule_id or flow_id, not both")
        if not has_rule and value is None and "rule_id" in info.data:
            raise ValueError("a silence needs a rule_id or a flow_id")
        return value

    @field_validator("duration")
    @classmethod
    def _one_end(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "ends_at" not in info.data:
            return value  # ends_at failed already
        if value is not None and info.data["ends_at"] is not None:
            raise ValueError("give ends_at or duration, not both")
        if value is None and info.data["ends_at"] is None:
            raise ValueError("a silence needs an end: ends_at or duration (e.g. '2h')")
        return value

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """(starts_at, ends_at) once `now` fills in the defaults; InvalidInput names the bad field."""
        starts = self.starts_at or now
        if starts - now > timedelta(seconds=MAX_SILENCE_S):
            raise _bad("starts_at", "must be within 30 days from now")
        if self.duration is not None:
            ends = starts + timedelta(seconds=self.duration)
        else:
            assert self.ends_at is not None
            ends = self.ends_at
        if ends <= starts:
            raise _bad("ends_at", "must be after starts_at")
        if ends <= now:
            raise _bad("ends_at", "is in the past: a silence must end later than now")
        if ends - max(starts, now) > timedelta(seconds=MAX_SILENCE_S):
            raise _bad("ends_at", "a silence lasts at most 30 days (pause the rule instead)")
        return starts, ends


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    rule_id: str | None
    flow_id: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    expired_by: str | None = None

    @property
    def status(self) -> str:
        """As of the real clock: what an answer shows."""
        return self.status_at(utc_now())

    def status_at(self, now: datetime) -> str:
        """ "pending" (starts later), "active", or "expired"."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, rule_id: str, flow_id: str, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and (self.rule_id == rule_id or self.flow_id == flow_id)


class Silencer:
    """The silences in force at one instant, looked up per (rule, flow)."""

    def __init__(self, silences: Iterable[Silence], now: datetime) -> None:
        self._by_rule: dict[str, str] = {}
        self._by_flow: dict[str, str] = {}
        for s in sorted(silences, key=lambda s: (s.ends_at, s.id), reverse=True):  # the longest wins
            if s.starts_at <= now < s.ends_at:
                if s.rule_id is not None:
                    self._by_rule.setdefault(s.rule_id, s.id)
                if s.flow_id is not None:
                    self._by_flow.setdefault(s.flow_id, s.id)

    def __bool__(self) -> bool:
        return bool(self._by_rule or self._by_flow)

    def silence_of(self, rule_id: str, flow_id: str) -> str | None:
        """The id of a silence muting this (rule, flow) now, if any."""
        return self._by_rule.get(rule_id) or self._by_flow.get(flow_id)
