"""Silences against a real webhook receiver on 127.0.0.1: inside one, rules are still judged and
their transitions stored, but nothing reaches the receiver and the delivery log says which
silence held each notification back; after it ends (or is expired), delivery resumes."""

from __future__ import annotations

from datetime import datetime, timedelta

from analytics.alerts import service
from analytics.alerts.silences import SilenceCreate
from tests.analytics.alerts.test_webhooks import Env, Receiver, env, errors, receiver
from tests.factories import OWNER
from tests.factories.alerts import Run, make_rule, save

__all__ = ["env", "receiver"]  # fixtures shared with the webhook tests


def silence(env: Env, minutes: int, *, now: datetime, **target: str) -> str:
    form = SilenceCreate(comment="deploy", duration=f"{minutes}m", **target)  # type: ignore[arg-type]
    return service.create_silence(env.s.ctx, OWNER, form, now=now).id


def settle(env: Env) -> None:
    assert env.alerts.dispatcher.wait_idle(30)


def successes(env: Env, at: datetime, n: int, flow: str = "a") -> None:
    save(
        env.s.ctx,
        [
            Run(env.s.flows[flow], at + timedelta(seconds=i), "success", 1, "", "n", "m", "success", 1)
            for i in range(n)
        ],
    )


def test_a_silenced_firing_is_recorded_not_sent_then_sent_when_the_silence_ends(
    env: Env, receiver: Receiver
) -> None:
    start = env.clock["now"]
    errors(env.s, start, 6)
    rule = make_rule(env.s.ctx, flow_id=env.s.flows["a"], window="1h", channel_ids=[env.channel.id])
    sid = silence(env, 10, now=start, rule_id=rule.id)

    out = env.evaluate(start + timedelta(minutes=5))
    settle(env)
    assert (out["transitions"], out["notifications"], out["silenced"]) == (1, 0, 1)
    assert receiver.got == []  # nothing reached the receiver
    [t] = service.list_transitions(env.s.ctx, OWNER, rule_id=rule.id)
    assert (t.transition.to_state.value, t.transition.silenced_by) == ("FIRING", sid)  # evaluation went on
    [held] = env.deliveries()
    assert (held.ok, held.attempt, held.error, held.event, held.transition_id) == (
        False,
        0,
        f"silenced by {sid}",
        "firing",
        t.id,
    )
    assert env.channel_now().consecutive_failures == 0  # a held-back notification is no failure

    env.evaluate(start + timedelta(minutes=8))  # still silenced, still firing: nothing
    settle(env)
    assert receiver.got == []

    out = env.evaluate(start + timedelta(minutes=15))  # the silence is over and the rule still fires
    settle(env)
    assert (out["transitions"], out["notifications"], out["silenced"]) == (0, 1, 0)
    [p] = receiver.payloads()
    assert (p["event"], p["state"], p["renotify"]) == ("firing", "FIRING", True)
    assert p["reason"] == "FIRING when the silence ended"
    env.evaluate(start + timedelta(minutes=20))  # told once, not at every evaluation after
    settle(env)
    assert len(receiver.got) == 1


def test_a_flow_silence_mutes_every_rule_on_that_flow_only(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    errors(env.s, start, 3, flow="b")
    rule = make_rule(env.s.ctx, owned_by="owner", window="1h", channel_ids=[env.channel.id])
    sid = silence(env, 30, now=start, flow_id=env.s.flows["a"])
    out = env.evaluate(start + timedelta(minutes=5))
    settle(env)
    assert (out["transitions"], out["notifications"], out["silenced"]) == (2, 1, 1)
    assert [p["flow_id"] for p in receiver.payloads()] == [env.s.flows["b"]]
    by_flow = {
        t.flow_id: t.transition.silenced_by
        for t in service.list_transitions(env.s.ctx, OWNER, rule_id=rule.id)
    }
    assert by_flow == {env.s.flows["a"]: sid, env.s.flows["b"]: None}


def test_fired_and_recovered_inside_a_silence_tells_nothing_after(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    successes(env, start + timedelta(minutes=20), 10)
    rule = make_rule(
        env.s.ctx, flow_id=env.s.flows["a"], window="15m", no_data="ok", channel_ids=[env.channel.id]
    )
    silence(env, 30, now=start, rule_id=rule.id)
    env.evaluate(start + timedelta(minutes=5))  # FIRING, held back
    env.evaluate(start + timedelta(minutes=25))  # OK again, held back
    env.evaluate(start + timedelta(minutes=40))  # after the silence: receivers never heard of it
    settle(env)
    assert receiver.got == []
    events = [t.transition.event for t in service.list_transitions(env.s.ctx, OWNER, rule_id=rule.id)]
    assert events == ["resolved", "firing"]  # the history still shows what happened
    assert [d.error is not None and d.error.startswith("silenced by") for d in env.deliveries()] == [
        True,
        True,
    ]


def test_a_resolution_held_back_is_sent_when_the_silence_ends(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    successes(env, start + timedelta(minutes=20), 10)
    rule = make_rule(
        env.s.ctx, flow_id=env.s.flows["a"], window="15m", no_data="ok", channel_ids=[env.channel.id]
    )
    env.evaluate(start + timedelta(minutes=5))  # FIRING, sent
    silence(env, 20, now=start + timedelta(minutes=10), rule_id=rule.id)
    env.evaluate(start + timedelta(minutes=25))  # OK, held back
    settle(env)
    assert [p["event"] for p in receiver.payloads()] == ["firing"]
    env.evaluate(start + timedelta(minutes=35))  # after the silence: they last heard "firing"
    settle(env)
    got = sorted(receiver.payloads(), key=lambda p: p["occurred_at"])
    assert [(p["event"], p["state"], p["reason"]) for p in got][1:] == [
        ("resolved", "OK", "OK when the silence ended")
    ]


def test_expiring_a_silence_resumes_delivery(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    rule = make_rule(env.s.ctx, flow_id=env.s.flows["a"], window="1h", channel_ids=[env.channel.id])
    sid = silence(env, 60 * 24 * 2, now=start, rule_id=rule.id)  # two days, from the test's past "now"
    env.evaluate(start + timedelta(minutes=5))
    settle(env)
    assert receiver.got == []
    at = start + timedelta(minutes=7)
    ended = service.expire_silence(env.s.ctx, OWNER, sid, now=at)
    assert (ended.expired_by, ended.ends_at, ended.status_at(at)) == ("owner", at, "expired")
    env.evaluate(start + timedelta(minutes=10))
    settle(env)
    assert [p["event"] for p in receiver.payloads()] == ["firing"]


def test_an_aware_time_is_stored_as_naive_utc() -> None:
    form = SilenceCreate.model_validate(
        {
            "flow_id": "f",
            "starts_at": "2030-01-01T12:00:00+02:00",
            "ends_at": "2030-01-01T13:30:00-01:00",
            "comment": "x",
        }
    )
    assert form.starts_at == datetime(2030, 1, 1, 10, 0)
    assert form.ends_at == datetime(2030, 1, 1, 14, 30)
