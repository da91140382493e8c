"""Webhooks received by a real HTTP server on 127.0.0.1: signature, payload, retries, disabling."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from analytics.alerts import repository as repo
from analytics.alerts import service
from analytics.alerts.lifecycle import Alerts, evaluate_now, start_alerts, stop_alerts
from analytics.alerts.webhooks import DispatchSettings, verify
from analytics.core.context import Context
from tests.factories.alerts import OTHER, OWNER, Run, Setup, hour_ago_base, make_rule, save, setup_flows

SECRET = "webhook-secret-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then `default`), recording it."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    got: list[Received] = field(default_factory=list)
    url: str = ""

    def payloads(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.body) for r in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                rec.got.append(Received(dict(self.headers.items()), body, time.monotonic()))
                status = rec.statuses.pop(0) if rec.statuses else rec.default
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Env:
    s: Setup
    alerts: Alerts
    clock: dict[str, datetime]
    channel: repo.Channel

    def evaluate(self, at: datetime) -> dict[str, Any]:
        self.clock["now"] = at
        return self.alerts.engine.evaluate()

    def channel_now(self) -> repo.Channel:
        return service.get_channel(self.s.ctx, OWNER, self.channel.id)

    def deliveries(self) -> list[repo.Delivery]:
        rows = service.list_deliveries(self.s.ctx, OWNER, channel_id=self.channel.id, limit=1000)
        return sorted(rows, key=lambda d: (d.at, d.attempt))


def make_env(ctx: Context, receiver: Receiver, **dispatch: Any) -> Env:
    s = setup_flows(ctx)
    clock = {"now": hour_ago_base()}
    settings = DispatchSettings(
        **{"backoff_s": 0.05, "max_attempts": 5, "max_failures": 3, "timeout_s": 5, **dispatch}
    )
    alerts = start_alerts(ctx, clock=lambda: clock["now"], dispatch=settings, ingest_trigger=False)
    channel = service.create_channel(
        ctx, OWNER, service.ChannelCreate(name="hook", url=receiver.url, secret=SECRET)
    )
    return Env(s, alerts, clock, channel)


@pytest.fixture
def env(ctx: Context, receiver: Receiver) -> Iterator[Env]:
    e = make_env(ctx, receiver)
    try:
        yield e
    finally:
        stop_alerts(ctx)


def errors(s: Setup, start: datetime, n: int, flow: str = "a", status: str = "error") -> None:
    save(
        s.ctx,
        [
            Run(s.flows[flow], start + timedelta(seconds=i), status, 100, "", "n", "m", status, 1)
            for i in range(n)
        ],
    )


def test_firing_and_resolved_are_signed_json(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 6)
    rule = make_rule(env.s.ctx, flow_id=env.s.flows["a"], window="15m", channel_ids=[env.channel.id])
    assert env.evaluate(start + timedelta(minutes=5))["notifications"] == 1
    assert env.alerts.dispatcher.wait_idle(30)
    env.evaluate(start + timedelta(minutes=30))  # the window is empty: NO_DATA (default mode)
    assert env.alerts.dispatcher.wait_idle(30)
    assert len(receiver.got) == 2
    for r in receiver.got:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Flowhistory-Signature"] == expected
        assert verify(SECRET, r.body, r.headers["X-Flowhistory-Signature"])
        assert int(r.headers["X-Flowhistory-Timestamp"]) > 0
        assert r.headers["Content-Type"] == "application/json"
    fired, no_data = sorted(receiver.payloads(), key=lambda p: p["occurred_at"])
    assert fired["event"] == "firing" and fired["state"] == "FIRING" and fired["previous_state"] == "OK"
    assert (fired["value"], fired["runs"], fired["threshold"]) == (1.0, 6, 0.5)
    assert fired["flow_id"] == env.s.flows["a"] and fired["rule"]["id"] == rule.id
    assert fired["rule"]["metric"] == "failure_rate" and fired["rule"]["window_s"] == 900
    assert fired["occurred_at"] == (start + timedelta(minutes=5)).isoformat() + "Z"
    [stored] = [
        t
        for t in service.list_transitions(env.s.ctx, OWNER, rule_id=rule.id)
        if t.transition.event == "firing"
    ]
    assert fired["transition_id"] == stored.id
    assert no_data["event"] == "no_data" and no_data["previous_state"] == "FIRING" and no_data["runs"] == 0
    assert [(d.attempt, d.ok, d.status_code) for d in env.deliveries()] == [(1, True, 200), (1, True, 200)]


def test_resolved_is_sent(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    save(
        env.s.ctx,
        [
            Run(
                env.s.flows["a"],
                start + timedelta(minutes=20, seconds=i),
                "success",
                1,
                "",
                "n",
                "m",
                "success",
                1,
            )
            for i in range(5)
        ],
    )
    make_rule(env.s.ctx, flow_id=env.s.flows["a"], window="15m", channel_ids=[env.channel.id])
    env.evaluate(start + timedelta(minutes=5))
    env.evaluate(start + timedelta(minutes=25))
    assert env.alerts.dispatcher.wait_idle(30)
    # sent concurrently, so in any order: receivers order by occurred_at
    got = sorted(receiver.payloads(), key=lambda p: p["occurred_at"])
    assert [(p["event"], p["state"]) for p in got] == [("firing", "FIRING"), ("resolved", "OK")]


def test_retries_with_backoff_until_accepted(env: Env, receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    start = env.clock["now"]
    errors(env.s, start, 3)
    make_rule(env.s.ctx, flow_id=env.s.flows["a"], window="15m", channel_ids=[env.channel.id])
    env.evaluate(start + timedelta(minutes=5))
    assert env.alerts.dispatcher.wait_idle(30)
    assert len(receiver.got) == 3
    assert len({r.body for r in receiver.got}) == 1  # the same signed body on every attempt
    assert len({r.headers["X-Flowhistory-Delivery"] for r in receiver.got}) == 3
    gaps = [b.at - a.at for a, b in zip(receiver.got, receiver.got[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # backoff 0.05 s, doubled
    rows = env.deliveries()
    assert [(d.attempt, d.ok, d.status_code, d.will_retry) for d in rows] == [
        (1, False, 500, True),
        (2, False, 500, True),
        (3, True, 200, False),
    ]
    assert len({d.notification_id for d in rows}) == 1
    ch = env.channel_now()
    assert ch.enabled and ch.consecutive_failures == 0  # a success resets the streak


def test_a_retry_is_not_overtaken_by_a_later_notification(ctx: Context, receiver: Receiver) -> None:
    """The FIRING failed once; the rule resolved before its retry was due. The RESOLVED was sent
    first and the FIRING retry after it, leaving the receiver showing an alert long resolved."""
    receiver.statuses = [500]
    e = make_env(ctx, receiver, backoff_s=1.0)
    try:
        start = e.clock["now"]
        errors(e.s, start, 3)
        make_rule(e.s.ctx, flow_id=e.s.flows["a"], window="15m", channel_ids=[e.channel.id])
        e.evaluate(start + timedelta(minutes=5))
        deadline = time.monotonic() + 30
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.01)
        errors(e.s, start + timedelta(minutes=40), 3, status="success")
        e.evaluate(start + timedelta(minutes=45))  # resolved while the FIRING waits for its retry
        assert e.alerts.dispatcher.wait_idle(30)
        assert [p["event"] for p in receiver.payloads()] == ["firing", "firing", "resolved"]
    finally:
        stop_alerts(ctx)


def test_a_reminder_carries_the_threshold_it_still_breaks(env: Env, receiver: Receiver) -> None:
    start = env.clock["now"]
    errors(env.s, start, 3)
    rule = make_rule(
        env.s.ctx, flow_id=env.s.flows["a"], window="1h", renotify_every="10m", channel_ids=[env.channel.id]
    )
    env.evaluate(start + timedelta(minutes=5))
    env.evaluate(start + timedelta(minutes=16))
    assert env.alerts.dispatcher.wait_idle(30)
    sent = [(p["event"], p["renotify"], p["threshold"]) for p in receiver.payloads()]
    assert sent == [("firing", False, rule.threshold), ("firing", True, rule.threshold)]  # was None


def test_a_retry_waiting_at_a_stop_is_made_after_the_next_start(ctx: Context, receiver: Receiver) -> None:
    """The queue was in memory only: a retry waiting when the server stopped was never made,
    and the delivery log said `will_retry` for ever."""
    receiver.statuses = [500]
    e = make_env(ctx, receiver, backoff_s=30.0)  # the retry is not due before the stop
    start = e.clock["now"]
    errors(e.s, start, 3)
    make_rule(e.s.ctx, flow_id=e.s.flows["a"], window="15m", channel_ids=[e.channel.id])
    e.evaluate(start + timedelta(minutes=5))
    deadline = time.monotonic() + 30
    while not e.deliveries() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_alerts(ctx)
    assert [(d.attempt, d.will_retry) for d in e.deliveries()] == [(1, True)]
    again = start_alerts(ctx, clock=lambda: e.clock["now"], dispatch=DispatchSettings(backoff_s=30.0))
    try:
        assert again.dispatcher.wait_idle(30)
        assert [(d.attempt, d.ok, d.will_retry) for d in e.deliveries()] == [
            (1, False, True),
            (2, True, False),
        ]
        first, second = receiver.payloads()
        assert first == second and first["event"] == "firing"  # the same notification, resumed
        assert ctx.store.read(repo.queued_notifications) == []  # delivered: nothing left to resume
    finally:
        stop_alerts(ctx)
    start_alerts(ctx, dispatch=DispatchSettings(backoff_s=30.0))  # nothing is sent twice
    stop_alerts(ctx)
    assert len(receiver.got) == 2


def test_gives_up_after_max_attempts(ctx: Context, receiver: Receiver) -> None:
    receiver.default = 503
    e = make_env(ctx, receiver, max_attempts=2, max_failures=10)
    try:
        start = e.clock["now"]
        errors(e.s, start, 3)
        make_rule(e.s.ctx, flow_id=e.s.flows["a"], window="15m", channel_ids=[e.channel.id])
        e.evaluate(start + timedelta(minutes=5))
        assert e.alerts.dispatcher.wait_idle(30)
        assert [(d.attempt, d.status_code, d.will_retry) for d in e.deliveries()] == [
            (1, 503, True),
            (2, 503, False),
        ]
        assert e.channel_now().consecutive_failures == 2 and e.channel_now().enabled
    finally:
        stop_alerts(ctx)


def test_channel_disabled_after_n_failures_in_a_row_and_says_so(env: Env, receiver: Receiver) -> None:
    receiver.default = 500
    start = env.clock["now"]
    errors(env.s, start, 3)
    errors(env.s, start, 3, flow="b")
    make_rule(env.s.ctx, owned_by="owner", window="15m", channel_ids=[env.channel.id])
    env.evaluate(start + timedelta(minutes=5))  # two flows fire: two notifications, 5 attempts each at most
    assert env.alerts.dispatcher.wait_idle(30)
    assert len(receiver.got) == 3  # the third failure in a row disabled the channel; nothing sent after
    ch = env.channel_now()
    assert not ch.enabled and ch.consecutive_failures == 3
    assert ch.disabled_reason is not None and "3 failed deliveries in a row" in ch.disabled_reason
    assert "HTTP 500" in ch.disabled_reason
    rows = env.deliveries()
    assert sum(d.status_code == 500 for d in rows) == 3
    assert all(not d.will_retry for d in rows if d.error and d.error.startswith("not sent"))
    # a later notification is not sent to the disabled channel
    env.evaluate(start + timedelta(minutes=40))
    assert env.alerts.dispatcher.wait_idle(30)
    assert len(receiver.got) == 3
    # re-enabled, it sends again and its streak starts over
    receiver.default = 200
    ch = service.update_channel(env.s.ctx, OWNER, env.channel.id, service.ChannelUpdate(enabled=True))
    assert ch.enabled and ch.disabled_reason is None and ch.consecutive_failures == 0


def test_send_test(env: Env, receiver: Receiver) -> None:
    receiver.statuses = [200, 500]
    ok = service.send_test(env.s.ctx, OWNER, env.channel.id)
    assert ok.ok and ok.status_code == 200 and ok.event == "test"
    bad = service.send_test(env.s.ctx, OWNER, env.channel.id)
    assert not bad.ok and bad.status_code == 500 and not bad.will_retry
    assert len(receiver.got) == 2
    r = receiver.got[0]
    assert verify(SECRET, r.body, r.headers["X-Flowhistory-Signature"])
    assert orjson.loads(r.body)["event"] == "test"
    assert orjson.loads(r.body)["id"] == ok.notification_id  # the delivery log names what was sent
    assert env.channel_now().consecutive_failures == 0  # tests do not count
    assert [d.event for d in env.deliveries()] == ["test", "test"]
    with pytest.raises(service.NotFound):
        service.send_test(env.s.ctx, OTHER, env.channel.id)


def test_a_channel_test_leaves_the_queued_notifications_alone(
    ctx: Context, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A test made a second dispatcher that resumed the whole outbox: every queued notification
    (a retry waiting its backoff) was sent again at once, past the attempts' limit, its
    failures counting towards disabling the channel, and "resuming ... before the restart"
    was logged with no restart."""
    receiver.statuses = [500]
    e = make_env(ctx, receiver, backoff_s=30.0)  # the retry is not due during the test
    try:
        start = e.clock["now"]
        errors(e.s, start, 3)
        make_rule(e.s.ctx, flow_id=e.s.flows["a"], window="15m", channel_ids=[e.channel.id])
        e.evaluate(start + timedelta(minutes=5))
        deadline = time.monotonic() + 30
        while not e.deliveries() and time.monotonic() < deadline:
            time.sleep(0.01)
        other = service.create_channel(
            ctx, OWNER, service.ChannelCreate(name="other", url=receiver.url, secret=SECRET)
        )
        with caplog.at_level("INFO"):
            for _ in range(3):
                assert service.send_test(ctx, OWNER, other.id).ok
        time.sleep(0.5)  # a resumed copy would be sent by now
        assert not [r for r in caplog.records if "resuming" in r.getMessage()]
        assert [p["event"] for p in receiver.payloads()] == ["firing", "test", "test", "test"]
        assert [(d.attempt, d.will_retry) for d in e.deliveries()] == [(1, True)]
        assert e.channel_now().consecutive_failures == 1
        assert len(ctx.store.read(repo.queued_notifications)) == 1  # still the server's to retry
    finally:
        stop_alerts(ctx)


def test_unreachable_endpoint_is_an_error_recorded(ctx: Context) -> None:
    s = setup_flows(ctx)
    ch = service.create_channel(
        ctx, OWNER, service.ChannelCreate(name="dead", url="http://127.0.0.1:9/nothing", secret=SECRET)
    )
    d = service.send_test(ctx, OWNER, ch.id)  # no server: a one-call dispatcher
    assert not d.ok and d.status_code is None and d.error is not None and "Connect" in d.error
    assert s.flows  # the store is still fine


def test_evaluate_now_sends_the_webhooks_before_it_returns(ctx: Context, receiver: Receiver) -> None:
    """What `flowhistory alerts evaluate` calls with no server running: judge, notify, stop."""
    s = setup_flows(ctx)
    now = ctx.store.read(lambda c: c.execute("SELECT now()::TIMESTAMP").fetchall()[0][0])
    errors(s, now - timedelta(minutes=5), 4)
    channel = service.create_channel(
        ctx, OWNER, service.ChannelCreate(name="hook", url=receiver.url, secret=SECRET)
    )
    make_rule(ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel.id])
    listeners = list(ctx.ingest_listeners)
    out = evaluate_now(ctx)
    assert (out["rules"], out["transitions"], out["notifications"]) == (1, 1, 1)
    assert [p["event"] for p in receiver.payloads()] == ["firing"]  # delivered, not merely queued
    assert ctx.alert_evaluator is None and ctx.ingest_listeners == listeners  # nothing left running
