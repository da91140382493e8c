"""Shapes for alert rules, transitions, channels and deliveries; times are epoch seconds.

The answer models read the library's objects (`from_attributes`). The inputs (`RuleCreate`,
`RuleUpdate`, `ChannelCreate`, `ChannelUpdate`) live in analytics beside the code that stores
them, so the library and the API refuse the same things.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AliasPath, BaseModel, BeforeValidator, ConfigDict, Field

from analytics.alerts.channels import ChannelCreate, ChannelKind, ChannelUpdate
from analytics.alerts.rules import Rule, RuleCreate, RuleUpdate, StoredName
from analytics.alerts.silences import SilenceCreate
from analytics.alerts.state_machine import RuleState
from api.schemas.timestamps import EpochSeconds

__all__ = [
    "ChannelCreate",
    "ChannelOut",
    "ChannelUpdate",
    "DeliveryOut",
    "EvaluationOut",
    "RuleCreate",
    "RuleOut",
    "RuleUpdate",
    "SilenceCreate",
    "SilenceOut",
    "TransitionOut",
    "rule_out",
]

_READ = ConfigDict(from_attributes=True)


def _of_transition(name: str) -> Any:
    return Field(validation_alias=AliasPath("transition", name))


class StateOut(BaseModel):
    model_config = _READ

    flow_id: str
    state: str
    since: EpochSeconds
    value: float | None
    runs: int | None
    evaluated_at: EpochSeconds | None


class RuleOut(RuleCreate):
    model_config = _READ

    name: StoredName  # a rule named before blank names were refused is still shown
    id: str
    created_by: str
    paused: bool
    created_at: EpochSeconds
    updated_at: EpochSeconds
    states: list[StateOut] = Field(description="one per flow judged (an owned_by rule judges each flow)")


class TransitionOut(BaseModel):
    """A `StoredTransition`: where and when, then its transition's fields."""

    model_config = _READ

    id: str
    rule_id: str
    flow_id: str
    at: EpochSeconds
    from_state: str = _of_transition("from_state")
    to_state: str = _of_transition("to_state")
    event: str = _of_transition("event")
    value: float | None = Field(
        validation_alias=AliasPath("transition", "value"), description="the measured value that caused it"
    )
    runs: int | None = Field(
        validation_alias=AliasPath("transition", "runs"), description="runs in the window"
    )
    threshold: float | None = Field(
        validation_alias=AliasPath("transition", "threshold"), description="the threshold crossed"
    )
    reason: str = _of_transition("reason")
    silenced_by: str | None = Field(
        validation_alias=AliasPath("transition", "silenced_by"),
        description="the silence that held its notification back, if one did",
    )


class ChannelOut(BaseModel):
    """A channel as its owner sees it: never its secret (nor the SMTP server's password)."""

    model_config = _READ

    id: str
    kind: ChannelKind
    name: str
    created_by: str
    url: Annotated[str | None, BeforeValidator(lambda v: v or None)] = Field(
        description="webhook and slack; null for email"
    )
    recipients: list[str] | None = Field(description="email; null for the other kinds")
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: EpochSeconds
    updated_at: EpochSeconds


class DeliveryOut(BaseModel):
    model_config = _READ

    id: str
    notification_id: str
    channel_id: str
    rule_id: str | None
    flow_id: str | None
    transition_id: str | None
    event: str
    attempt: int
    at: EpochSeconds
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float | None
    will_retry: bool
    body: Annotated[Any, BeforeValidator(orjson.loads)] = Field(description="the JSON sent (stored as text)")


class EvaluationErrorOut(BaseModel):
    rule_id: str
    flow_id: str | None = Field(description="null: the stored rule could not be read")
    error: str


class EvaluationOut(BaseModel):
    rules: int
    targets: int
    transitions: int
    notifications: int
    silenced: int = Field(description="notifications a silence held back (logged as deliveries, not sent)")
    duration_ms: float
    errors: list[EvaluationErrorOut] = Field(
        default_factory=list,
        description="rules (on a flow) that could not be judged: they keep their state, the others were judged",
    )


class SilenceOut(BaseModel):
    model_config = _READ

    id: str
    rule_id: str | None
    flow_id: str | None
    starts_at: EpochSeconds
    ends_at: EpochSeconds
    comment: str
    created_by: str
    created_at: EpochSeconds
    expired_by: str | None = Field(description="who ended it early, if someone did")
    status: Literal["pending", "active", "expired"]


def rule_out(rule: Rule, states: dict[tuple[str, str], RuleState]) -> RuleOut:
    """A rule and its state per flow: the states come from their own query (`rule_states`),
    keyed by (rule, flow), so this joins the two; every field is read by the models."""
    mine = [
        StateOut.model_validate(
            {
                **{f: getattr(s, f) for f in ("state", "since", "value", "runs", "evaluated_at")},
                "flow_id": flow_id,
            }
        )
        for (rule_id, flow_id), s in sorted(states.items())
        if rule_id == rule.id
    ]
    return RuleOut.model_validate({**rule.model_dump(), "states": mine})
