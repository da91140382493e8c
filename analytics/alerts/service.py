"""What a caller may do with rules, transitions and channels, checked here, not in the routes.

Who sees and manages what:
- A flow-scoped rule is managed by the flow's owner and admins. It is seen by those who see
  every run of the flow (owner, admins, write-grantees): its values are computed over all runs,
  so showing them to a reader limited to their own runs would leak the others'.
- A rule over "all flows a user owns" (`owned_by`) is managed and seen by that user and admins.
- Transitions are seen when their rule is, and only for flows the caller sees entirely.
- Channels (a signed webhook, a Slack webhook or email recipients: analytics/alerts/channels.py)
  belong to their creator; admins see all. The secret is never shown.
- A silence of a rule is made and ended by those who manage the rule, and seen by those who see
  it; a silence of a flow (every rule judging it) by the flow's owner and admins, seen by those
  who see every run of the flow. An unknown rule or flow in a silence is a 422 naming the field;
  a flow the caller cannot read is a 403, as every flow route answers it (a rule the caller
  cannot see is unknown).
A rule the caller may not see is "not found", never "forbidden": its existence is not told.

Nothing here reaches into the server's runtime: a rule change is announced on the Context
(`notify_rules_changed`: a running engine refreshes what it watches), evaluate-now and pause go
through `lifecycle.evaluator(ctx)` (the running engine's port, or an engine of the call), a rule
change through `lifecycle.engine_of(ctx)` (the engine resolves the states it ends), and a
channel's test is sent by a dispatcher of the call, on the caller's thread.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from analytics.access.permissions import FLOW_NOT_FOUND, Viewer, grant_for, require_flow_access
from analytics.alerts import repository as repo
from analytics.alerts.channels import ChannelCreate, ChannelUpdate, check_destination, stored_fields
from analytics.alerts.lifecycle import engine_of, evaluator
from analytics.alerts.rules import Rule, RuleCreate, RuleUpdate
from analytics.alerts.silences import Silence, SilenceCreate
from analytics.alerts.state_machine import RuleState
from analytics.alerts.webhooks import WebhookDispatcher
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound, TooManyRequests
from analytics.core.store import Connection, Store

RULE_NOT_FOUND = "Alert rule not found"
CHANNEL_NOT_FOUND = "Channel not found"
SILENCE_NOT_FOUND = "Silence not found"


def _invalid(exc: ValidationError) -> InvalidInput:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return InvalidInput(f"{field}: {err['msg']}" if field else err["msg"], field=field)


# -- access --------------------------------------------------------------------------------------


def _sees_flow(ctx: Context, viewer: Viewer, flow_id: str) -> bool:
    flow = ctx.directory.flow(flow_id)
    return flow is not None and grant_for(ctx.directory, viewer, flow).sees_all


def can_see_rule(ctx: Context, viewer: Viewer, rule: Rule) -> bool:
    if viewer.is_admin:
        return True
    if rule.owned_by is not None:
        return rule.owned_by == viewer.id
    if rule.flow_id is not None and ctx.directory.flow(rule.flow_id) is None:
        return rule.created_by == viewer.id  # its flow was deleted: its author may still remove it
    return rule.flow_id is not None and _sees_flow(ctx, viewer, rule.flow_id)


def _require_manage(ctx: Context, viewer: Viewer, rule: RuleCreate) -> None:
    if rule.flow_id is not None:
        require_flow_access(ctx.directory, viewer, rule.flow_id, owner=True)
    elif not viewer.is_admin and rule.owned_by != viewer.id:
        raise AccessDenied("Only admins may create rules over another user's flows")
    elif ctx.directory.user(rule.owned_by or "") is None:
        raise InvalidInput(f"owned_by: there is no user {rule.owned_by!r}", field="owned_by")


def _no_such_flow(flow_id: str) -> InvalidInput:
    return InvalidInput(f"flow_id: there is no flow {flow_id!r}", field="flow_id")


def _require_manage_form(ctx: Context, viewer: Viewer, form: RuleCreate) -> None:
    """`_require_manage` for a rule a body gives: its `flow_id` is a field, so an unknown flow is
    a 422 naming it (as a silence's is), not the 404 of a flow in a URL; a flow the caller cannot
    read is unknown to them too (a 403 told it exists). One they read but may not manage is a 403."""
    if form.flow_id is not None:
        flow = ctx.directory.flow(form.flow_id)
        if flow is None:
            ctx.directory.check_missing()  # Open WebUI mode, its database unreadable: 503
            raise _no_such_flow(form.flow_id)
        if not grant_for(ctx.directory, viewer, flow).read:
            raise _no_such_flow(form.flow_id)
    _require_manage(ctx, viewer, form)


def _check_channels(ctx: Context, viewer: Viewer, channel_ids: list[str]) -> None:
    if not channel_ids:
        return
    found = {c.id: c for c in ctx.store.read(lambda c: repo.load_channels(c, channel_ids))}
    for cid in channel_ids:
        ch = found.get(cid)
        if ch is None or not (viewer.is_admin or ch.created_by == viewer.id):
            raise InvalidInput(f"channel_ids: no channel {cid!r} of yours", field="channel_ids")


def _channels_still_there(c: Connection, channel_ids: list[str]) -> None:
    """On the writer: a channel deleted since `_check_channels` is refused as an unknown one
    (the rule kept a link to it, and its notices failed with a traceback)."""
    gone = repo.missing_channels(c, channel_ids)
    if gone:
        raise InvalidInput(f"channel_ids: no channel {gone[0]!r} of yours", field="channel_ids")


def _visible_rule(ctx: Context, viewer: Viewer, rule_id: str) -> Rule:
    rule = ctx.store.read(lambda c: repo.get_rule(c, rule_id))
    if rule is None or not can_see_rule(ctx, viewer, rule):
        raise NotFound(RULE_NOT_FOUND)
    return rule


def _managed_rule(ctx: Context, viewer: Viewer, rule_id: str, *, orphan_ok: bool = False) -> Rule:
    rule = _visible_rule(ctx, viewer, rule_id)
    if orphan_ok and rule.flow_id is not None and ctx.directory.flow(rule.flow_id) is None:
        return rule  # a rule whose flow is gone judges nothing; its author or an admin deletes it
    _require_manage(ctx, viewer, rule)
    return rule


# -- rules ---------------------------------------------------------------------------------------


def create_rule(ctx: Context, viewer: Viewer, form: RuleCreate) -> Rule:
    _require_manage_form(ctx, viewer, form)
    _check_channels(ctx, viewer, form.channel_ids)
    now = utc_now()
    rule = Rule(
        **form.model_dump(), id=str(uuid.uuid4()), created_by=viewer.id, created_at=now, updated_at=now
    )

    def insert(c: Connection) -> None:
        _channels_still_there(c, rule.channel_ids)
        # a flow deleted since it was checked (its delete may commit in this same group): the
        # delete took the flow's rules with it, and this one would judge nothing, listed for ever
        if rule.flow_id is not None and not repo.flow_exists(c, rule.flow_id):
            raise _no_such_flow(rule.flow_id)
        repo.insert_rule(c, rule)

    ctx.store.write(insert)
    ctx.notify_rules_changed()
    return rule


def get_rule(ctx: Context, viewer: Viewer, rule_id: str) -> Rule:
    return _visible_rule(ctx, viewer, rule_id)


def list_rules(ctx: Context, viewer: Viewer, *, flow_id: str | None = None) -> list[Rule]:
    """Rules the caller sees; with `flow_id`, those judging that flow (its own and owner-wide)."""
    if flow_id is not None:
        require_flow_access(ctx.directory, viewer, flow_id)
    rules = [r for r in ctx.store.read(repo.load_rules) if can_see_rule(ctx, viewer, r)]
    if flow_id is None:
        return rules
    flow = ctx.directory.flow(flow_id)
    owner = flow.owner_id if flow is not None else None
    return [r for r in rules if r.flow_id == flow_id or (r.owned_by is not None and r.owned_by == owner)]


def update_rule(ctx: Context, viewer: Viewer, rule_id: str, patch: RuleUpdate) -> Rule:
    rule = _managed_rule(ctx, viewer, rule_id)
    changes = patch.model_dump(exclude_unset=True)
    merged = {k: v for k, v in rule.model_dump().items() if k in RuleCreate.model_fields}
    merged.update(changes)
    try:
        form = RuleCreate.model_validate(merged)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    _require_manage_form(ctx, viewer, form)
    _check_channels(ctx, viewer, [c for c in form.channel_ids if c not in rule.channel_ids])
    updated = Rule(
        **form.model_dump(),
        id=rule.id,
        created_by=rule.created_by,
        paused=rule.paused,
        created_at=rule.created_at,
        updated_at=utc_now(),
    )
    judged = ("metric", "flow_id", "owned_by", "flow_version", "node_id", "model", "window")
    rescope = any(getattr(updated, k) != getattr(rule, k) for k in judged)

    def save(c: Connection) -> Rule:
        _channels_still_there(c, updated.channel_ids)
        if updated.flow_id is not None and not repo.flow_exists(c, updated.flow_id):
            if updated.flow_id != rule.flow_id:  # moved to a flow deleted since it was checked
                raise _no_such_flow(updated.flow_id)
            raise NotFound(FLOW_NOT_FOUND)  # its own flow went, and took the rule with it
        if not repo.replace_rule(c, updated):  # deleted since it was read
            raise NotFound(RULE_NOT_FOUND)
        return updated

    # it measures something else now: the engine resolves what receivers heard of its states
    # and clears them, in this write (judged afresh at the next evaluation)
    engine_of(ctx).change_rule(rule, save, rescope=rescope)
    ctx.notify_rules_changed()
    return updated


def delete_rule(ctx: Context, viewer: Viewer, rule_id: str) -> None:
    _managed_rule(ctx, viewer, rule_id, orphan_ok=True)
    ctx.store.write(lambda c: repo.delete_rule(c, rule_id))
    ctx.notify_rules_changed()


def set_paused(ctx: Context, viewer: Viewer, rule_id: str, paused: bool) -> Rule:
    rule = _managed_rule(ctx, viewer, rule_id)
    if rule.paused != paused:
        evaluator(ctx).set_paused(rule, paused)
        ctx.notify_rules_changed()
    return _visible_rule(ctx, viewer, rule_id)


def rule_states(ctx: Context, viewer: Viewer, rules: list[Rule]) -> dict[tuple[str, str], RuleState]:
    """The current state per (rule, flow), for flows the caller sees entirely."""
    ids = [r.id for r in rules]
    if not ids:
        return {}
    states = ctx.store.read(lambda c: repo.load_states(c, ids))
    return {k: s for k, s in states.items() if viewer.is_admin or _sees_flow(ctx, viewer, k[1])}


def evaluate_now(ctx: Context, viewer: Viewer, rule_id: str | None = None) -> dict[str, Any]:
    """One rule (its managers) or every rule (admins), judged at once; notifications are sent.

    Every rule is judged on its own: one that fails is in the summary's `errors` and the others
    are judged all the same. Asked for one rule that failed (for any of its flows, the others
    judged), the call fails: its caller asked for that judgement and did not get it."""
    if rule_id is None:
        if not viewer.is_admin:
            raise AccessDenied("Only admins may evaluate every rule")
        return evaluator(ctx).evaluate()
    _managed_rule(ctx, viewer, rule_id)
    out = evaluator(ctx).evaluate(rule_ids=[rule_id])
    if out.get("errors"):
        raise RuntimeError(f"alert rule {rule_id} could not be evaluated: {out['errors'][0]['error']}")
    return out


# -- transitions ---------------------------------------------------------------------------------


def list_transitions(
    ctx: Context,
    viewer: Viewer,
    *,
    rule_id: str | None = None,
    flow_id: str | None = None,
    limit: int = 100,
    before: datetime | None = None,
) -> list[repo.StoredTransition]:
    """Newest first, narrowed to rules and flows the caller sees."""
    if flow_id is not None:
        require_flow_access(ctx.directory, viewer, flow_id)
    if rule_id is not None:
        rule_ids: list[str] | None = [_visible_rule(ctx, viewer, rule_id).id]
    elif viewer.is_admin:
        rule_ids = None
    else:
        rule_ids = [r.id for r in ctx.store.read(repo.load_rules) if can_see_rule(ctx, viewer, r)]
    if viewer.is_admin:
        flow_ids = None if flow_id is None else [flow_id]
    else:
        seen = [f.id for f in ctx.directory.flows() if grant_for(ctx.directory, viewer, f).sees_all]
        flow_ids = [f for f in seen if flow_id is None or f == flow_id]
    return ctx.store.read(
        lambda c: repo.list_transitions(c, rule_ids=rule_ids, flow_ids=flow_ids, limit=limit, before=before)
    )


# -- channels ------------------------------------------------------------------------------------


def _visible_channel(ctx: Context, viewer: Viewer, channel_id: str) -> repo.Channel:
    ch = ctx.store.read(lambda c: repo.get_channel(c, channel_id))
    if ch is None or not (viewer.is_admin or ch.created_by == viewer.id):
        raise NotFound(CHANNEL_NOT_FOUND)
    return ch


def create_channel(ctx: Context, viewer: Viewer, form: ChannelCreate) -> repo.Channel:
    check_destination(form, ctx.settings)  # 422 naming url (and why) or kind (no SMTP server)
    now = utc_now()
    ch = repo.Channel(
        str(uuid.uuid4()),
        form.name,
        viewer.id,
        enabled=True,
        disabled_reason=None,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
        **stored_fields(form),
    )
    return ctx.store.write(lambda c: repo.insert_channel(c, ch))


def list_channels(ctx: Context, viewer: Viewer) -> list[repo.Channel]:
    return [c for c in ctx.store.read(repo.load_channels) if viewer.is_admin or c.created_by == viewer.id]


def get_channel(ctx: Context, viewer: Viewer, channel_id: str) -> repo.Channel:
    return _visible_channel(ctx, viewer, channel_id)


def update_channel(ctx: Context, viewer: Viewer, channel_id: str, patch: ChannelUpdate) -> repo.Channel:
    """The channel with the patch applied is validated whole, as a new one of its kind would be:
    a field its kind does not use is refused, naming it. A field left out stays as it was (a
    null is refused by ChannelUpdate, naming it: no field of a channel can be cleared)."""
    ch = _visible_channel(ctx, viewer, channel_id)
    changes = patch.model_dump(exclude_unset=True, exclude={"enabled"})
    merged: dict[str, Any] = {
        "kind": ch.kind,
        "name": ch.name,
        "url": ch.url or None,
        "secret": ch.secret or None,
        "recipients": ch.recipients,
    }
    merged.update(changes)
    try:
        form = ChannelCreate.model_validate(merged)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    if "url" in changes or "recipients" in changes:
        check_destination(form, ctx.settings)
    new = replace(ch, name=form.name, updated_at=utc_now(), **stored_fields(form))
    if patch.enabled is True:
        new = replace(new, enabled=True, disabled_reason=None, consecutive_failures=0)
    elif patch.enabled is False:
        new = replace(new, enabled=False, disabled_reason=f"disabled by {viewer.id}")
    saved = ctx.store.write(lambda c: repo.update_channel(c, new))
    if saved is None:  # deleted since it was read
        raise NotFound(CHANNEL_NOT_FOUND)
    return saved


def delete_channel(ctx: Context, viewer: Viewer, channel_id: str) -> None:
    _visible_channel(ctx, viewer, channel_id)
    ctx.store.write(lambda c: repo.delete_channel(c, channel_id))


TESTS_PER_MINUTE = 5  # test sends a user may make a minute, over all their channels
# per store (a server): when each user's recent test sends went
_tests_sent: weakref.WeakKeyDictionary[Store, dict[str, deque[float]]] = weakref.WeakKeyDictionary()
_tests_lock = threading.Lock()


def _count_test(store: Store, user_id: str, now: float) -> None:
    """Any user may make an email channel to any 20 addresses with a name of their own, and its
    test sent mail from the organisation's server as often as asked: a spam relay. A user's
    test sends are limited (TooManyRequests, 429); notifications of rules are not."""
    with _tests_lock:
        sent = _tests_sent.setdefault(store, defaultdict(deque))[user_id]
        while sent and sent[0] <= now - 60:
            sent.popleft()
        if len(sent) >= TESTS_PER_MINUTE:
            wait = max(1, math.ceil(sent[0] + 60 - now))
            raise TooManyRequests(
                f"at most {TESTS_PER_MINUTE} test notifications a minute per user: try again in {wait} s",
                retry_after=wait,
            )
        sent.append(now)


def send_test(ctx: Context, viewer: Viewer, channel_id: str) -> repo.Delivery:
    """Send a "test" notification now and answer how it went (also recorded)."""
    _visible_channel(ctx, viewer, channel_id)
    _count_test(ctx.store, viewer.id, time.monotonic())
    # a test is one attempt on this thread, never retried, counted nowhere: it needs none of
    # the running dispatcher's queue, so a dispatcher of the call sends it, server or not (and
    # leaves the outbox to the server's: resuming it too sent each queued notification twice)
    dispatcher = WebhookDispatcher(ctx, resume=False)
    try:
        return dispatcher.send_test(channel_id)
    finally:
        dispatcher.close()


def list_deliveries(
    ctx: Context,
    viewer: Viewer,
    *,
    channel_id: str | None = None,
    rule_id: str | None = None,
    limit: int = 100,
) -> list[repo.Delivery]:
    if channel_id is not None:
        channel_ids = [_visible_channel(ctx, viewer, channel_id).id]
    else:
        channel_ids = [c.id for c in list_channels(ctx, viewer)]
    if rule_id is not None:
        _visible_rule(ctx, viewer, rule_id)
    return ctx.store.read(
        lambda c: repo.list_deliveries(c, channel_ids=channel_ids, rule_id=rule_id, limit=limit)
    )


# -- silences ------------------------------------------------------------------------------------


def _require_silence_rights(ctx: Context, viewer: Viewer, rule_id: str | None, flow_id: str | None) -> None:
    """Who may make or end a silence of this rule or flow (see the module's docstring)."""
    if rule_id is not None:
        rule = ctx.store.read(lambda c: repo.get_rule(c, rule_id))
        if rule is None or not can_see_rule(ctx, viewer, rule):
            raise InvalidInput(f"rule_id: there is no rule {rule_id!r}", field="rule_id")
        _require_manage(ctx, viewer, rule)
        return
    assert flow_id is not None
    flow = ctx.directory.flow(flow_id)
    if flow is None:
        ctx.directory.check_missing()  # Open WebUI mode, its database unreadable: 503
        raise _no_such_flow(flow_id)
    if not grant_for(ctx.directory, viewer, flow).read:  # unknown to them too, as for a rule
        raise _no_such_flow(flow_id)
    require_flow_access(ctx.directory, viewer, flow_id, owner=True)  # read, not managed: 403


def _sees_silence(ctx: Context, viewer: Viewer, s: Silence, rules: dict[str, Rule]) -> bool:
    if viewer.is_admin:
        return True
    if s.rule_id is not None:
        rule = rules.get(s.rule_id)
        return rule is not None and can_see_rule(ctx, viewer, rule)
    return s.flow_id is not None and _sees_flow(ctx, viewer, s.flow_id)


def create_silence(
    ctx: Context, viewer: Viewer, form: SilenceCreate, *, now: datetime | None = None
) -> Silence:
    """Mute the notifications of a rule, or of every rule judging a flow, from `starts_at`
    (default now) to `ends_at` (or for `duration`). `now` is for tests."""
    _require_silence_rights(ctx, viewer, form.rule_id, form.flow_id)
    now = now or utc_now()
    starts, ends = form.window(now)
    silence = Silence(
        str(uuid.uuid4()), form.rule_id, form.flow_id, starts, ends, form.comment, viewer.id, now
    )

    def insert(c: Connection) -> Silence:
        """On the writer: a rule or flow deleted since the checks is unknown, as it would be
        before them (a silence outliving its rule was never deleted with it)."""
        if silence.rule_id is not None and not repo.rule_exists(c, silence.rule_id):
            raise InvalidInput(f"rule_id: there is no rule {silence.rule_id!r}", field="rule_id")
        if silence.flow_id is not None and repo.flow_name(c, silence.flow_id) is None:
            raise InvalidInput(f"flow_id: there is no flow {silence.flow_id!r}", field="flow_id")
        return repo.insert_silence(c, silence)

    return ctx.store.write(insert)


def list_silences(
    ctx: Context,
    viewer: Viewer,
    *,
    flow_id: str | None = None,
    rule_id: str | None = None,
    active: bool | None = None,
    now: datetime | None = None,
) -> list[Silence]:
    """Newest first. `flow_id`: the flow's silences and those of rules judging it; `active`:
    True for those in force or to come, False for those over."""
    now = now or utc_now()
    if flow_id is not None:
        require_flow_access(ctx.directory, viewer, flow_id)
    rules = {r.id: r for r in ctx.store.read(repo.load_rules)}
    if rule_id is not None:
        _visible_rule(ctx, viewer, rule_id)
    judging = {r.id for r in list_rules(ctx, viewer, flow_id=flow_id)} if flow_id is not None else set()
    out = []
    for s in ctx.store.read(repo.load_silences):
        if not _sees_silence(ctx, viewer, s, rules):
            continue
        if flow_id is not None and s.flow_id != flow_id and s.rule_id not in judging:
            continue
        if rule_id is not None and s.rule_id != rule_id:
            continue
        if active is not None and (s.status_at(now) != "expired") != active:
            continue
        out.append(s)
    return out


def expire_silence(ctx: Context, viewer: Viewer, silence_id: str, *, now: datetime | None = None) -> Silence:
    """End a silence now (one not begun yet never begins); one already over is answered as is.
    `now` is for tests."""
    s = ctx.store.read(lambda c: repo.get_silence(c, silence_id))
    rules = {r.id: r for r in ctx.store.read(repo.load_rules)}
    if s is None or not _sees_silence(ctx, viewer, s, rules):
        raise NotFound(SILENCE_NOT_FOUND)
    try:
        _require_silence_rights(ctx, viewer, s.rule_id, s.flow_id)
    except InvalidInput as exc:  # its rule or flow is gone: whoever sees it may end it
        if s.created_by != viewer.id and not viewer.is_admin:
            raise AccessDenied("Only its author or an admin may end this silence") from exc
    now = now or utc_now()
    done = ctx.store.write(lambda c: repo.expire_silence(c, silence_id, now, viewer.id))
    assert done is not None
    return done
