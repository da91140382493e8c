"""Alert rules (CRUD, pause/resume, evaluate now), transitions, silences, channels (webhook, Slack, email), deliveries.

Access is decided in analytics.alerts.service; a rule or channel the caller may not see is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analytics.alerts import service
from analytics.alerts.rules import Rule
from api.dependencies import AdminUser, Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.alerts import (
    ChannelCreate,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    EvaluationOut,
    RuleCreate,
    RuleOut,
    RuleUpdate,
    SilenceCreate,
    SilenceOut,
    TransitionOut,
    rule_out,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], route_class=JsonRoute)
Limit = Annotated[int, Query(ge=1, le=1000)]
OptionalId = Annotated[str | None, Query(min_length=1, max_length=255)]  # `?flow_id=` (empty) is a 422


def _rule(ctx: Ctx, viewer: CurrentUser, rule: Rule) -> RuleOut:
    return rule_out(rule, service.rule_states(ctx, viewer, [rule]))


@router.get("/rules", response_model=list[RuleOut])
def list_rules(viewer: CurrentUser, ctx: Ctx, flow_id: OptionalId = None) -> list[RuleOut]:
    """Rules the caller sees, with their state per flow; `flow_id` narrows to one flow's."""
    rules = service.list_rules(ctx, viewer, flow_id=flow_id)
    states = service.rule_states(ctx, viewer, rules)
    return [rule_out(r, states) for r in rules]


@router.post("/rules", response_model=RuleOut, status_code=201)
def create_rule(form: RuleCreate, viewer: CurrentUser, ctx: Ctx) -> RuleOut:
    """Create a rule (the flow's owner or an admin; `owned_by` yourself, or anyone as admin)."""
    return _rule(ctx, viewer, service.create_rule(ctx, viewer, form))


@router.get("/rules/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: str, viewer: CurrentUser, ctx: Ctx) -> RuleOut:
    """One rule and its state per flow."""
    return _rule(ctx, viewer, service.get_rule(ctx, viewer, rule_id))


@router.patch("/rules/{rule_id}", response_model=RuleOut)
def update_rule(rule_id: str, patch: RuleUpdate, viewer: CurrentUser, ctx: Ctx) -> RuleOut:
    """Change fields; the whole rule is validated again (422 names the field)."""
    return _rule(ctx, viewer, service.update_rule(ctx, viewer, rule_id, patch))


@router.delete("/rules/{rule_id}", response_model=bool)
def delete_rule(rule_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete a rule with its states and transitions."""
    service.delete_rule(ctx, viewer, rule_id)
    return True


@router.post("/rules/{rule_id}/pause", response_model=RuleOut)
def pause_rule(rule_id: str, viewer: CurrentUser, ctx: Ctx) -> RuleOut:
    """Stop judging the rule: its states go PAUSED (a transition each)."""
    return _rule(ctx, viewer, service.set_paused(ctx, viewer, rule_id, True))


@router.post("/rules/{rule_id}/resume", response_model=RuleOut)
def resume_rule(rule_id: str, viewer: CurrentUser, ctx: Ctx) -> RuleOut:
    """Judge the rule again, starting from OK."""
    return _rule(ctx, viewer, service.set_paused(ctx, viewer, rule_id, False))


@router.post("/rules/{rule_id}/evaluate", response_model=EvaluationOut)
def evaluate_rule(rule_id: str, viewer: CurrentUser, ctx: Ctx) -> EvaluationOut:
    """Judge this rule now (its managers); transitions are stored and notified."""
    return EvaluationOut.model_validate(service.evaluate_now(ctx, viewer, rule_id))


@router.post("/evaluate", response_model=EvaluationOut)
def evaluate_all(viewer: AdminUser, ctx: Ctx) -> EvaluationOut:
    """Judge every rule now (admins)."""
    return EvaluationOut.model_validate(service.evaluate_now(ctx, viewer))


@router.get("/rules/{rule_id}/transitions", response_model=list[TransitionOut])
def rule_transitions(rule_id: str, viewer: CurrentUser, ctx: Ctx, limit: Limit = 100) -> Any:
    """The rule's transitions, newest first, with the values that caused them."""
    return service.list_transitions(ctx, viewer, rule_id=rule_id, limit=limit)


@router.get("/transitions", response_model=list[TransitionOut])
def transitions(viewer: CurrentUser, ctx: Ctx, flow_id: OptionalId = None, limit: Limit = 100) -> Any:
    """Transitions of every rule the caller sees (or of one flow), newest first."""
    return service.list_transitions(ctx, viewer, flow_id=flow_id, limit=limit)


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(
    viewer: CurrentUser,
    ctx: Ctx,
    flow_id: OptionalId = None,
    rule_id: OptionalId = None,
    active: Annotated[bool | None, Query(description="true: in force or to come; false: over")] = None,
) -> Any:
    """Silences the caller sees, newest first; `flow_id` narrows to the flow's and its rules'."""
    return service.list_silences(ctx, viewer, flow_id=flow_id, rule_id=rule_id, active=active)


@router.post("/silences", response_model=SilenceOut, status_code=201)
def create_silence(form: SilenceCreate, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Mute a rule's notifications, or every rule's on a flow, until `ends_at` (or for `duration`).
    Rules are still judged and their transitions recorded; held-back notifications are logged."""
    return service.create_silence(ctx, viewer, form)


@router.delete("/silences/{silence_id}", response_model=SilenceOut)
def expire_silence(silence_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """End a silence now; it stays listed as expired."""
    return service.expire_silence(ctx, viewer, silence_id)


@router.get("/channels", response_model=list[ChannelOut])
def list_channels(viewer: CurrentUser, ctx: Ctx) -> Any:
    """The caller's channels (admins: all), each with its `kind`; secrets are never shown."""
    return service.list_channels(ctx, viewer)


@router.post("/channels", response_model=ChannelOut, status_code=201)
def create_channel(form: ChannelCreate, viewer: CurrentUser, ctx: Ctx) -> Any:
    """`kind` `webhook` (default): JSON POSTs to `url` signed with HMAC-SHA256 of the body keyed
    with `secret`; `slack`: a Slack-compatible incoming webhook `url` (https), a readable message;
    `email`: `recipients`, through the server's SMTP settings. A field the kind does not use is a
    422 naming it."""
    return service.create_channel(ctx, viewer, form)


@router.get("/channels/{channel_id}", response_model=ChannelOut)
def get_channel(channel_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """One channel; a disabled one says why in `disabled_reason`."""
    return service.get_channel(ctx, viewer, channel_id)


@router.patch("/channels/{channel_id}", response_model=ChannelOut)
def update_channel(channel_id: str, patch: ChannelUpdate, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Change name, URL, secret or recipients (as its kind allows; the kind itself does not
    change); `enabled: true` re-enables it and clears its failure streak."""
    return service.update_channel(ctx, viewer, channel_id, patch)


@router.delete("/channels/{channel_id}", response_model=bool)
def delete_channel(channel_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete a channel; rules stop sending to it."""
    service.delete_channel(ctx, viewer, channel_id)
    return True


@router.post(
    "/channels/{channel_id}/test",
    response_model=DeliveryOut,
    responses={429: {"description": "More than 5 test sends a minute by this user"}},
)
def test_channel(channel_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Send a "test" notification now (a webhook POST, a Slack message or a test mail); answers
    the attempt: its HTTP or SMTP status code or a short error, never the server's reply."""
    return service.send_test(ctx, viewer, channel_id)


@router.get("/channels/{channel_id}/deliveries", response_model=list[DeliveryOut])
def channel_deliveries(channel_id: str, viewer: CurrentUser, ctx: Ctx, limit: Limit = 100) -> Any:
    """Every attempt to this channel, newest first."""
    return service.list_deliveries(ctx, viewer, channel_id=channel_id, limit=limit)


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries(viewer: CurrentUser, ctx: Ctx, rule_id: OptionalId = None, limit: Limit = 100) -> Any:
    """Attempts to the caller's channels (admins: all), optionally of one rule, newest first."""
    return service.list_deliveries(ctx, viewer, rule_id=rule_id, limit=limit)
