"""A judgement is stored in one write: states, transitions and the outbox rows of their
notifications (the held-back ones' delivery rows too), for rules and flows still there.

Before, the states and transitions were one write and the outbox a second one: a crash between
them left a rule FIRING whose notification nobody ever sent (the next evaluation saw it FIRING
already). A flow deleted while it was judged kept states, transitions and notifications for
ever. A PATCH changing what a firing rule measures cleared its states silently: no "resolved"
notification, no transition, the history ending at OK->FIRING while the state said OK.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.alerts import engine as engine_module
from analytics.alerts import repository as repo
from analytics.alerts import service
from analytics.alerts.channels import ChannelCreate
from analytics.alerts.engine import AlertEngine
from analytics.alerts.lifecycle import Alerts, start_alerts, stop_alerts
from analytics.alerts.rules import Rule, RuleCreate, RuleUpdate
from analytics.alerts.silences import SilenceCreate
from analytics.alerts.webhooks import DispatchSettings, Notification, WebhookDispatcher
from analytics.core.context import Context
from analytics.flows import registry as flows
from tests.analytics.alerts import test_webhooks
from tests.factories import OWNER, World, open_world, save_run
from tests.factories.alerts import Collect, Run, Setup, hour_ago_base, make_rule, save, setup_flows

Receiver = test_webhooks.Receiver
receiver = test_webhooks.receiver  # the fixture: a real HTTP receiver on 127.0.0.1
SECRET = test_webhooks.SECRET
CHANGED_REASON = "the rule was changed: judged afresh"  # engine.CHANGED_REASON, as documented
FAST = DispatchSettings(backoff_s=0.05, max_attempts=3, timeout_s=5)


class Killed(BaseException):
    """The process dying (kill -9): nothing after it runs."""


class DiesAtHandOff:
    """A dispatcher the process dies in when notifications are handed to it, before any send."""

    def enqueue(self, notifications: list[Notification]) -> None:
        raise Killed

    def push(self, notifications: list[Notification]) -> None:
        raise Killed


class Boom(Exception):
    pass


def at(minutes: int) -> datetime:
    return hour_ago_base() + timedelta(minutes=minutes)


def errors(s: Setup, flow: str, n: int = 5) -> None:
    save(
        s.ctx,
        [Run(s.flows[flow], at(i), "error", 100, "", "llm_1", "model-a", "error", 5) for i in range(n)],
    )


def channel(ctx: Context, url: str = "http://127.0.0.1:9/hook") -> str:
    return service.create_channel(ctx, OWNER, ChannelCreate(name="hook", url=url, secret=SECRET)).id


def rows(ctx: Context, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return ctx.store.read(lambda c: c.execute(sql, list(params)).fetchall())


def states(ctx: Context, rule: Rule) -> dict[str, str]:
    return {k[1]: v.state.value for k, v in ctx.store.read(lambda c: repo.load_states(c, [rule.id])).items()}


def transitions(ctx: Context, rule: Rule) -> list[repo.StoredTransition]:
    return ctx.store.read(lambda c: repo.list_transitions(c, rule_ids=[rule.id], flow_ids=None, limit=100))


# -- 1. one write ------------------------------------------------------------------------------


def test_a_crash_after_the_evaluation_commits_loses_no_notification(ctx: Context, receiver: Receiver) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    rule = make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel(ctx, receiver.url)])
    with pytest.raises(Killed):  # the process dies right after the commit, before any send
        AlertEngine(ctx, DiesAtHandOff()).evaluate(at(10))  # type: ignore[arg-type]
    assert states(ctx, rule) == {s.flows["a"]: "FIRING"}
    [fired] = transitions(ctx, rule)
    # the next start: its dispatcher resumes what the outbox holds
    dispatcher = WebhookDispatcher(ctx, FAST)
    try:
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.close()
    [sent] = receiver.payloads()
    assert (sent["event"], sent["transition_id"], sent["rule"]["id"]) == ("firing", fired.id, rule.id)
    assert rows(ctx, "SELECT count(*) FROM alert_outbox") == [(0,)]


def test_a_failed_write_stores_nothing_and_the_next_evaluation_notifies(
    ctx: Context, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    rule = make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel(ctx, receiver.url)])
    dispatcher = WebhookDispatcher(ctx, FAST)
    try:
        engine = AlertEngine(ctx, dispatcher)
        real = repo.queue_notifications

        def fails(c: Any, rows: list[tuple[Any, ...]]) -> None:
            raise Boom("the write dies with the outbox rows")

        monkeypatch.setattr(repo, "queue_notifications", fails)
        with pytest.raises(Boom):
            engine.evaluate(at(10))
        assert states(ctx, rule) == {} and transitions(ctx, rule) == []  # nothing half-stored
        monkeypatch.setattr(repo, "queue_notifications", real)
        out = engine.evaluate(at(11))  # judged again: the same change, notified this time
        assert (out["transitions"], out["notifications"]) == (1, 1)
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.close()
    assert [p["event"] for p in receiver.payloads()] == ["firing"]


# -- 2. a flow deleted while it is judged ----------------------------------------------------


def test_a_flow_deleted_while_it_is_judged_keeps_no_state(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    errors(s, "b")
    rule = make_rule(ctx, owned_by="owner", window="1h", channel_ids=[channel(ctx)])
    real = engine_module.measure

    def measure_then_delete(*args: Any, **kwargs: Any) -> Any:
        measured = real(*args, **kwargs)
        flows.delete_flow(ctx, OWNER, s.flows["b"])  # commits before the evaluation's write
        return measured

    monkeypatch.setattr(engine_module, "measure", measure_then_delete)
    collect = Collect()
    out = AlertEngine(ctx, collect).evaluate(at(10))  # type: ignore[arg-type]
    assert states(ctx, rule) == {s.flows["a"]: "FIRING"}
    assert [t.flow_id for t in transitions(ctx, rule)] == [s.flows["a"]]
    assert [n.flow_id for n in collect.sent] == [s.flows["a"]]
    assert rows(ctx, "SELECT DISTINCT flow_id FROM alert_outbox") == [(s.flows["a"],)]
    assert (out["transitions"], out["notifications"]) == (1, 1)


@pytest.fixture
def webui_world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path, "sqlite")


def test_flows_mirrored_from_open_webui_keep_their_states(webui_world: World) -> None:
    """In Open WebUI mode a flow exists while the store has its copy (the poller's)."""
    w = webui_world
    for _ in range(3):
        save_run(w, w.shared, status="error")
    form = RuleCreate(name="r", metric="failure_rate", flow_id=w.shared, window=3600, threshold=0.5)  # type: ignore[arg-type]
    rule = service.create_rule(w.ctx, OWNER, form)
    assert w.ctx.alert_evaluator is not None
    assert w.ctx.alert_evaluator.evaluate(rule_ids=[rule.id])["transitions"] == 1
    assert states(w.ctx, rule) == {w.shared: "FIRING"}


# -- 4. a PATCH changing what a firing rule measures -------------------------------------------


@pytest.fixture
def clock() -> dict[str, datetime]:
    """The engine's now: a PATCH's transitions are stamped with it."""
    return {"now": at(11)}


@pytest.fixture
def alerts(ctx: Context, clock: dict[str, datetime]) -> Iterator[Alerts]:
    running = start_alerts(ctx, clock=lambda: clock["now"], dispatch=FAST, ingest_trigger=False)
    try:
        yield running
    finally:
        stop_alerts(ctx)


def test_a_patch_that_rescopes_a_firing_rule_resolves_it(
    ctx: Context, receiver: Receiver, alerts: Alerts
) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    rule = make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel(ctx, receiver.url)])
    assert alerts.engine.evaluate(at(10))["notifications"] == 1
    assert alerts.dispatcher.wait_idle(30)
    service.update_rule(ctx, OWNER, rule.id, RuleUpdate(window=7200))  # type: ignore[arg-type]
    assert states(ctx, rule) == {}  # judged afresh at the next evaluation
    newest = transitions(ctx, rule)[0]
    t = newest.transition
    assert (t.from_state.value, t.to_state.value, t.event, t.reason) == (
        "FIRING",
        "OK",
        "resolved",
        CHANGED_REASON,
    )
    assert alerts.dispatcher.wait_idle(30)
    fired, resolved = receiver.payloads()
    assert (resolved["event"], resolved["state"], resolved["previous_state"]) == ("resolved", "OK", "FIRING")
    assert (resolved["transition_id"], resolved["reason"], resolved["value"]) == (
        newest.id,
        CHANGED_REASON,
        1.0,
    )
    assert fired["event"] == "firing"


def test_the_resolution_of_a_patch_is_in_the_outbox_with_it(
    ctx: Context, receiver: Receiver, alerts: Alerts
) -> None:
    """Written with the PATCH, not after it: a dispatcher gone at that moment loses nothing."""
    s = setup_flows(ctx)
    errors(s, "a")
    rule = make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel(ctx, receiver.url)])
    alerts.engine.evaluate(at(10))
    assert alerts.dispatcher.wait_idle(30)
    alerts.dispatcher.close()  # the senders stop: what is queued now waits in the outbox
    service.update_rule(ctx, OWNER, rule.id, RuleUpdate(metric="error_count", threshold=3))  # type: ignore[arg-type]
    [(event, body)] = rows(ctx, "SELECT event, body FROM alert_outbox")
    assert event == "resolved" and CHANGED_REASON in body
    again = WebhookDispatcher(ctx, FAST)  # the next start sends it
    try:
        assert again.wait_idle(30)
    finally:
        again.close()
    assert [p["event"] for p in receiver.payloads()] == ["firing", "resolved"]


def test_a_patch_resolves_no_data_too_and_silences_hold_it_back(
    ctx: Context, receiver: Receiver, alerts: Alerts, clock: dict[str, datetime]
) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    hook = channel(ctx, receiver.url)
    quiet = make_rule(ctx, flow_id=s.flows["a"], window="15m", channel_ids=[hook])
    silenced = make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[hook])
    alerts.engine.evaluate(at(60))  # quiet: an empty window, NO_DATA; silenced: FIRING
    assert states(ctx, quiet) == {s.flows["a"]: "NO_DATA"}
    assert states(ctx, silenced) == {s.flows["a"]: "FIRING"}
    assert alerts.dispatcher.wait_idle(30)
    form = SilenceCreate(rule_id=silenced.id, duration=3600, comment="deploy")  # type: ignore[arg-type]
    silence = service.create_silence(ctx, OWNER, form, now=at(59))
    clock["now"] = at(61)
    for rule in (quiet, silenced):
        service.update_rule(ctx, OWNER, rule.id, RuleUpdate(window=1800))  # type: ignore[arg-type]
    assert alerts.dispatcher.wait_idle(30)
    # NO_DATA -> OK is the state machine's "ok", but receivers heard "no_data": told "resolved"
    assert [(p["event"], p["rule"]["id"]) for p in receiver.payloads()[2:]] == [("resolved", quiet.id)]
    ended = transitions(ctx, quiet)[0].transition
    assert (ended.from_state.value, ended.event, ended.reason) == ("NO_DATA", "ok", CHANGED_REASON)
    muted = transitions(ctx, silenced)[0]
    assert (muted.transition.event, muted.transition.silenced_by) == ("resolved", silence.id)
    logged = service.list_deliveries(ctx, OWNER, rule_id=silenced.id)
    held = [d for d in logged if d.attempt == 0]
    assert [(d.event, d.error, d.transition_id) for d in held] == [
        ("resolved", f"silenced by {silence.id}", muted.id)
    ]


def test_a_patch_that_measures_the_same_keeps_the_states(ctx: Context, alerts: Alerts) -> None:
    s = setup_flows(ctx)
    errors(s, "a")
    rule = make_rule(ctx, flow_id=s.flows["a"], window="1h")
    alerts.engine.evaluate(at(10))
    service.update_rule(ctx, OWNER, rule.id, RuleUpdate(name="renamed"))  # type: ignore[arg-type]
    assert states(ctx, rule) == {s.flows["a"]: "FIRING"} and len(transitions(ctx, rule)) == 1
