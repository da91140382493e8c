"""Shapes for alert rules, transitions, channels and deliveries; times are epoch seconds.

The inputs (`RuleCreate`, `RuleUpdate`, `ChannelCreate`, `ChannelUpdate`) live in analytics
beside the code that stores them, so the library and the API refuse the same things.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field

from analytics.alerts.repository import Channel, Delivery, StoredTransition
from analytics.alerts.rules import Rule, RuleCreate, RuleUpdate
from analytics.alerts.service import ChannelCreate, ChannelUpdate
from analytics.alerts.state_machine import RuleState
from api.schemas.timestamps import epoch_or_none, epoch_seconds

__all__ = [
    "ChannelCreate",
    "ChannelOut",
    "ChannelUpdate",
    "DeliveryOut",
    "EvaluationOut",
    "RuleCreate",
    "RuleOut",
    "RuleUpdate",
    "TransitionOut",
    "channel_out",
    "delivery_out",
    "rule_out",
    "transition_out",
]


class StateOut(BaseModel):
    flow_id: str
    state: str
    since: int
    value: float | None
    runs: int | None
    evaluated_at: int | None


class RuleOut(RuleCreate):
    id: str
    created_by: str
    paused: bool
    created_at: int
    updated_at: int
    states: list[StateOut] = Field(description="one per flow judged (an owned_by rule judges each flow)")


class TransitionOut(BaseModel):
    id: str
    rule_id: str
    flow_id: str
    at: int
    from_state: str
    to_state: str
    event: str
    value: float | None = Field(description="the measured value that caused it")
    runs: int | None = Field(description="runs in the window")
    threshold: float | None = Field(description="the threshold crossed")
    reason: str


class ChannelOut(BaseModel):
    id: str
    name: str
    created_by: str
    url: str
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: int
    updated_at: int


class DeliveryOut(BaseModel):
    id: str
    notification_id: str
    channel_id: str
    rule_id: str | None
    flow_id: str | None
    transition_id: str | None
    event: str
    attempt: int
    at: int
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float | None
    will_retry: bool
    body: Any = Field(description="the JSON sent")


class EvaluationOut(BaseModel):
    rules: int
    targets: int
    transitions: int
    notifications: int
    duration_ms: float


def rule_out(rule: Rule, states: dict[tuple[str, str], RuleState]) -> RuleOut:
    data = rule.model_dump()
    data["created_at"] = epoch_seconds(rule.created_at)
    data["updated_at"] = epoch_seconds(rule.updated_at)
    data["states"] = [
        StateOut(
            flow_id=flow_id,
            state=s.state.value,
            since=epoch_seconds(s.since),
            value=s.value,
            runs=s.runs,
            evaluated_at=epoch_or_none(s.evaluated_at),
        )
        for (rule_id, flow_id), s in sorted(states.items())
        if rule_id == rule.id
    ]
    return RuleOut.model_validate(data)


def transition_out(t: StoredTransition) -> TransitionOut:
    x = t.transition
    return TransitionOut(
        id=t.id, rule_id=t.rule_id, flow_id=t.flow_id, at=epoch_seconds(t.at),
        from_state=x.from_state.value, to_state=x.to_state.value, event=x.event,
        value=x.value, runs=x.runs, threshold=x.threshold, reason=x.reason,
    )


def channel_out(c: Channel) -> ChannelOut:
    return ChannelOut(
        id=c.id, name=c.name, created_by=c.created_by, url=c.url, enabled=c.enabled,
        disabled_reason=c.disabled_reason, consecutive_failures=c.consecutive_failures,
        created_at=epoch_seconds(c.created_at), updated_at=epoch_seconds(c.updated_at),
    )


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id, notification_id=d.notification_id, channel_id=d.channel_id, rule_id=d.rule_id,
        flow_id=d.flow_id, transition_id=d.transition_id, event=d.event, attempt=d.attempt,
        at=epoch_seconds(d.at), ok=d.ok, status_code=d.status_code, error=d.error,
        duration_ms=d.duration_ms, will_retry=d.will_retry, body=orjson.loads(d.body),
    )
