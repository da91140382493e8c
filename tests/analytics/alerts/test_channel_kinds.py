"""Slack and email channels, delivered to real servers on 127.0.0.1: a Slack-compatible HTTP
receiver and an SMTP server (aiosmtpd) started by the tests; validation naming the field;
migration 9 up and down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session
from pydantic import ValidationError

from analytics.alerts import messages, service
from analytics.alerts import repository as repo
from analytics.alerts.channels import ChannelCreate, ChannelUpdate
from analytics.alerts.lifecycle import Alerts, start_alerts, stop_alerts
from analytics.alerts.webhooks import SIGNATURE_HEADER, DispatchSettings
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import InvalidInput
from tests.analytics.alerts.test_webhooks import Receiver, errors, receiver
from tests.factories import SECRET
from tests.factories.alerts import OWNER, Setup, channel_settings, hour_ago_base, make_rule, setup_flows
from tests.live_server import free_port
from tests.smtp_server import SMTP_PASSWORD, SMTP_USER, Mailbox, smtp_server

__all__ = ["receiver"]  # the HTTP receiver fixture, shared with the webhook tests

PUBLIC_URL = "https://flowhistory.example.com"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as box:
        yield box, box.port


@pytest.fixture
def settings(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Settings:
    return channel_settings(
        tmp_path,
        mailbox[1],
        smtp_from="flowhistory <alerts@example.com>",
        smtp_timeout_s=5,
        public_url=PUBLIC_URL,
    )


# -- the environment: flows, a clock, the running dispatcher ---------------------------------


@dataclass
class Env:
    s: Setup
    alerts: Alerts
    clock: dict[str, datetime]

    def fire(self, channel: repo.Channel, name: str = "too many failures") -> None:
        """Three failed runs of flow a, a failure-rate rule over 15 minutes, judged 5 minutes on."""
        start = self.clock["now"]
        errors(self.s, start, 3)
        make_rule(self.s.ctx, flow_id=self.s.flows["a"], window="15m", channel_ids=[channel.id], name=name)
        self.clock["now"] = start + timedelta(minutes=5)
        assert self.alerts.engine.evaluate()["notifications"] == 1
        assert self.alerts.dispatcher.wait_idle(30)

    def deliveries(self, channel: repo.Channel) -> list[repo.Delivery]:
        rows = service.list_deliveries(self.s.ctx, OWNER, channel_id=channel.id, limit=100)
        return sorted(rows, key=lambda d: (d.at, d.attempt))


@pytest.fixture
def env(ctx: Context) -> Iterator[Env]:
    s = setup_flows(ctx)
    clock = {"now": hour_ago_base()}
    dispatch = DispatchSettings(backoff_s=0.05, max_attempts=3, max_failures=5, timeout_s=5)
    alerts = start_alerts(ctx, clock=lambda: clock["now"], dispatch=dispatch, ingest_trigger=False)
    try:
        yield Env(s, alerts, clock)
    finally:
        stop_alerts(ctx)


def slack(ctx: Context, url: str) -> repo.Channel:
    return service.create_channel(ctx, OWNER, ChannelCreate(kind="slack", name="team-slack", url=url))


def email(ctx: Context, *recipients: str) -> repo.Channel:
    return service.create_channel(
        ctx, OWNER, ChannelCreate(kind="email", name="on-call", recipients=list(recipients))
    )


# -- Slack -------------------------------------------------------------------------------------


def test_slack_gets_a_readable_unsigned_message(env: Env, receiver: Receiver) -> None:
    channel = slack(env.s.ctx, receiver.url)
    env.fire(channel, name="<!channel> failures & more")
    [got] = receiver.got
    assert SIGNATURE_HEADER not in got.headers and got.headers["Content-Type"] == "application/json"
    [body] = receiver.payloads()
    assert set(body) == {"text", "blocks"}
    text = body["text"]
    # escaped for Slack: the rule's name cannot ping the channel
    assert "&lt;!channel&gt; failures &amp; more" in text and "<!channel>" not in text
    assert "FIRING" in text and "on a:" in text  # flow a, by its name
    assert "100.0 %" in text and "&gt; 50.0 % over 15m" in text  # 3 of 3 failed; the threshold 0.5; > escaped
    title, facts, context = body["blocks"]
    assert title["type"] == "section" and "FIRING" in title["text"]["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in facts["fields"]}
    assert fields == {
        "*Flow*": "a",
        "*Change*": "OK → FIRING",
        "*Value*": "100.0 % (3 runs)",
        "*Threshold*": "failure rate &gt; 50.0 % over 15m",
    }
    link = f"<{PUBLIC_URL}/#/flows/{env.s.flows['a']}/alerts|Open in flowhistory>"
    assert context["type"] == "context" and context["elements"][-1]["text"] == link
    [d] = env.deliveries(channel)
    assert (
        d.ok and d.status_code == 200 and d.body == receiver.got[0].body.decode()
    )  # the log keeps what was sent


def test_slack_is_retried_logged_and_disabled_like_a_webhook(env: Env, receiver: Receiver) -> None:
    receiver.statuses = [500]
    channel = slack(env.s.ctx, receiver.url)
    env.fire(channel)
    assert [(d.attempt, d.ok, d.status_code, d.will_retry) for d in env.deliveries(channel)] == [
        (1, False, 500, True),
        (2, True, 200, False),
    ]
    assert receiver.got[0].body == receiver.got[1].body
    receiver.default = 500  # five failures in a row (the env's limit) disable it
    for _ in range(5):
        assert not service.send_test(env.s.ctx, OWNER, channel.id).ok  # tests do not count ...
    assert service.get_channel(env.s.ctx, OWNER, channel.id).enabled
    env.clock["now"] += timedelta(minutes=30)  # ... notifications do: NO_DATA, then 3 attempts
    env.alerts.engine.evaluate()
    assert env.alerts.dispatcher.wait_idle(30)
    assert service.get_channel(env.s.ctx, OWNER, channel.id).consecutive_failures == 3


def test_slack_test_message(env: Env, receiver: Receiver) -> None:
    channel = slack(env.s.ctx, receiver.url)
    d = service.send_test(env.s.ctx, OWNER, channel.id)
    assert d.ok and d.status_code == 200 and d.event == "test"
    [body] = receiver.payloads()
    assert "test notification for channel team-slack" in body["text"]


def test_slack_url_must_be_https_unless_allowed(ctx: Context) -> None:
    setup_flows(ctx)
    with pytest.raises(InvalidInput) as err:
        slack(ctx, "http://hooks.example.com/services/T0/B0/x")
    assert err.value.field == "url" and "https" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        slack(ctx, "https://10.1.2.3/services/T0/B0/x")  # the egress guard, as for webhooks
    assert err.value.field == "url" and "private" in str(err.value)
    assert slack(ctx, "http://127.0.0.1:9/hook").kind == "slack"  # the allow-list names 127.0.0.1
    assert service.list_channels(ctx, OWNER)[0].secret == ""


# -- email -------------------------------------------------------------------------------------


def test_email_is_delivered_with_text_and_html(env: Env, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    channel = email(env.s.ctx, "ops@Example.COM", "oncall@example.org", "ops@example.com")
    assert channel.recipients == [
        "ops@example.com",
        "oncall@example.org",
    ]  # the domain folded, duplicates gone
    env.fire(channel, name="errors <b>up</b>\nBcc: x@evil.example")
    [(sender, to, msg)] = box.got
    assert box.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    assert sender == "alerts@example.com" and to == ["ops@example.com", "oncall@example.org"]
    assert msg["To"] == "ops@example.com, oncall@example.org" and msg["Bcc"] is None
    subject = str(msg["Subject"])
    assert subject.startswith("[flowhistory] FIRING: errors <b>up</b> Bcc: x@evil.example on a:")
    assert "100.0 %" in subject and "\n" not in subject
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    assert "Change: OK → FIRING" in plain and "Value: 100.0 % (3 runs)" in plain
    assert "Threshold: failure rate > 50.0 % over 15m" in plain
    assert f"Open in flowhistory: {PUBLIC_URL}/#/flows/{env.s.flows['a']}/alerts" in plain
    page = html.get_content()
    assert "errors &lt;b&gt;up&lt;/b&gt;" in page and "<b>up</b>" not in page  # escaped
    assert f'href="{PUBLIC_URL}/#/flows/{env.s.flows["a"]}/alerts"' in page
    [d] = env.deliveries(channel)
    assert (d.ok, d.status_code, d.error, d.will_retry) == (True, 250, None, False)
    assert '"to":["ops@example.com","oncall@example.org"]' in d.body and SMTP_PASSWORD not in d.body


def test_failing_smtp_server_is_a_failed_delivery_then_a_retry(
    env: Env, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, _ = mailbox
    box.replies = ["451 4.3.0 mailbox temporarily unavailable: secret-server-text"]
    channel = email(env.s.ctx, "ops@example.com")
    with caplog.at_level(logging.DEBUG):
        env.fire(channel)
    rows = env.deliveries(channel)
    assert [(d.attempt, d.ok, d.status_code, d.will_retry) for d in rows] == [
        (1, False, 451, True),
        (2, True, 250, False),
    ]
    assert rows[0].error == "SMTPDataError: SMTP 451"  # the code, not the server's words
    assert len(box.got) == 1
    handler = logging.Formatter()
    ours = "\n".join(
        handler.format(r) for r in caplog.records if not r.name.startswith("mail")
    )  # not the server's
    assert SMTP_PASSWORD not in ours and "secret-server-text" not in ours
    assert any(r.name.startswith("mail") for r in caplog.records)  # the capture did see the exchange


def test_unreachable_smtp_server_fails_without_raising(settings: Settings) -> None:
    dead = settings.model_copy(update={"smtp_port": free_port()})  # nothing listens there
    with open_context(dead) as ctx:
        setup_flows(ctx)
        channel = email(ctx, "ops@example.com")
        d = service.send_test(ctx, OWNER, channel.id)
    assert (d.ok, d.status_code, d.error, d.will_retry) == (False, None, "ConnectionRefusedError", False)


def test_email_test_mail(env: Env, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    channel = email(env.s.ctx, "ops@example.com")
    d = service.send_test(env.s.ctx, OWNER, channel.id)
    assert d.ok and d.status_code == 250
    [(_, to, msg)] = box.got
    assert to == ["ops@example.com"] and "test notification for channel on-call" in str(msg["Subject"])


def test_refused_recipient_is_a_failed_delivery(env: Env, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox

    async def refuse(
        server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550 5.1.1 no such user"

    box.handle_RCPT = refuse  # type: ignore[attr-defined]
    channel = email(env.s.ctx, "nobody@example.com")
    d = service.send_test(env.s.ctx, OWNER, channel.id)
    assert (d.ok, d.status_code, d.error) == (False, 550, "SMTPRecipientsRefused: SMTP 550")
    assert box.got == []


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"kind": "email", "name": "x"}, "recipients"),
        ({"kind": "email", "name": "x", "recipients": []}, "recipients"),
        ({"kind": "email", "name": "x", "recipients": ["not-an-address"]}, "recipients"),
        ({"kind": "email", "name": "x", "recipients": ["a@b.c\nBcc: x@y.z"]}, "recipients"),
        ({"kind": "email", "name": "x", "recipients": ["Ops <ops@example.com>"]}, "recipients"),
        ({"kind": "email", "name": "x", "recipients": ["ops@localhost"]}, "recipients"),
        (
            {"kind": "email", "name": "x", "recipients": ["ops@example.com"], "url": "https://a.example"},
            "url",
        ),
        ({"kind": "slack", "name": "x"}, "url"),
        ({"kind": "slack", "name": "x", "url": "https://hooks.example.com/x", "secret": "s" * 16}, "secret"),
        (
            {"kind": "slack", "name": "x", "url": "https://hooks.example.com/x", "recipients": ["a@b.co"]},
            "recipients",
        ),
        ({"name": "x", "url": "https://hooks.example.com/x"}, "secret"),  # webhook: the default kind
        ({"kind": "pager", "name": "x"}, "kind"),
    ],
)
def test_forms_name_the_bad_field(form: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ChannelCreate.model_validate(form)
    assert err.value.errors()[0]["loc"][0] == field


def test_email_without_an_smtp_server_is_refused(tmp_path: Path) -> None:
    with open_context(Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET)) as ctx:
        setup_flows(ctx)
        with pytest.raises(InvalidInput) as err:
            email(ctx, "ops@example.com")
        assert err.value.field == "kind" and "FLOWHISTORY_SMTP_HOST" in str(err.value)
        assert service.list_channels(ctx, OWNER) == []


def test_one_tls_mode(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(
            db_path=tmp_path / "s.duckdb", smtp_host="mail.example.com", smtp_ssl=True, smtp_starttls=True
        )


def test_a_from_address_that_cannot_be_used_is_a_failed_delivery(settings: Settings) -> None:
    with open_context(
        settings.model_copy(update={"smtp_from": "alerts@example.com\r\nBcc: x@evil.example"})
    ) as ctx:
        setup_flows(ctx)
        d = service.send_test(ctx, OWNER, email(ctx, "ops@example.com").id)
    assert (d.ok, d.error) == (False, "not sent: the mail could not be built (ValueError)")


def test_update_is_checked_against_the_kind(ctx: Context) -> None:
    setup_flows(ctx)
    channel = email(ctx, "ops@example.com")
    for patch, field_name in (
        ({"url": "https://a.example/x"}, "url"),
        ({"secret": "s" * 16}, "secret"),
        ({"recipients": []}, "recipients"),
        ({"recipients": ["nope"]}, "recipients"),
    ):
        with pytest.raises(InvalidInput) as err:
            service.update_channel(ctx, OWNER, channel.id, ChannelUpdate.model_validate(patch))
        assert err.value.field == field_name
    changed = service.update_channel(
        ctx, OWNER, channel.id, ChannelUpdate(recipients=["b@example.com"], name="n")
    )
    assert (changed.recipients, changed.name, changed.kind) == (["b@example.com"], "n", "email")
    assert service.get_channel(ctx, OWNER, channel.id) == changed
    hook = service.create_channel(
        ctx, OWNER, ChannelCreate(name="h", url="http://127.0.0.1:9/h", secret="s" * 16)
    )
    with pytest.raises(InvalidInput) as err:
        service.update_channel(ctx, OWNER, hook.id, ChannelUpdate(recipients=["b@example.com"]))
    assert err.value.field == "recipients"
    kept = service.update_channel(ctx, OWNER, hook.id, ChannelUpdate(name="renamed"))
    assert (kept.kind, kept.secret, kept.url) == ("webhook", "s" * 16, "http://127.0.0.1:9/h")
    # a null is refused naming the field (it read as "unchanged"): no field of a channel clears
    with pytest.raises(ValidationError) as refused:
        ChannelUpdate.model_validate({"url": None, "secret": None})
    assert [e["loc"] for e in refused.value.errors()] == [("url",), ("secret",)]
    assert service.get_channel(ctx, OWNER, hook.id) == kept


# -- the words ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("failure_rate", 0.25, "25.0 %"),
        # two significant digits below 1 % (a 0.0004 threshold read "0.0 %")
        ("failure_rate", 0.0004, "0.04 %"),
        ("failure_rate", 0.0015, "0.15 %"),
        ("failure_rate", 0.00999, "1.0 %"),
        ("failure_rate", 0, "0.0 %"),
        ("p95_duration", 850, "850 ms"),
        ("p95_duration", 12_340, "12.34 s"),
        ("p95_duration", 150_000, "2.5 min"),
        ("cost", 0.01234, "$0.0123"),
        # two significant digits at least (a $0.00002 threshold read "$0.0000")
        ("cost", 0.00002, "$0.000020"),
        ("cost", -0.000051, "$-0.000051"),
        ("cost", 0, "$0.00"),
        ("cost", 1234.5, "$1,234.50"),
        ("error_count", 1234, "1,234"),
        ("run_count", None, "no data"),
    ],
)
def test_values_in_the_rules_units(metric: str, value: float | None, text: str) -> None:
    assert messages.format_value(metric, value) == text


def test_a_change_names_the_alert_threshold_and_the_level_it_crossed_apart() -> None:
    """A RESOLVED said "alert at failure rate > 20.0 %" for a rule alerting at 50 %: 20 % is
    where it recovers."""
    rule = {"name": "r", "metric": "failure_rate", "operator": "gt", "threshold": 0.5, "window_s": 3600}
    rule |= {"recovery_threshold": 0.2, "warning_threshold": 0.3}
    base = {"rule": rule, "value": 0.15, "runs": 40, "flow_id": "f"}
    resolved = messages.render({**base, "event": "resolved", "threshold": 0.2}, "flow", None)
    assert "alert at failure rate > 50.0 % over 1h" in resolved.summary
    assert ("Threshold", "failure rate > 50.0 % over 1h") in resolved.facts
    assert ("Recovery level", "20.0 %") in resolved.facts
    warning = messages.render({**base, "event": "warning", "threshold": 0.3}, "flow", None)
    assert ("Warning level", "30.0 %") in warning.facts and "> 50.0 %" in warning.summary
    firing = messages.render({**base, "event": "firing", "threshold": 0.5}, "flow", None)
    assert [label for label, _ in firing.facts if label.endswith("level")] == []


def test_a_tiny_failure_rate_threshold_reads_as_itself() -> None:
    rule = {"name": "r", "metric": "failure_rate", "operator": "gt", "threshold": 0.0004, "window_s": 3600}
    msg = messages.render({"rule": rule, "event": "firing", "value": 0.001, "runs": 1000}, "flow", None)
    assert msg.summary.endswith("failure rate 0.1 % (1,000 runs), alert at failure rate > 0.04 % over 1h")


def test_names_with_line_breaks_stay_on_one_line() -> None:
    """Slack's `text` is one line; a flow named "support\r\nbot" broke it."""
    rule = {"name": "errors\nnow", "metric": "error_count", "operator": "gt", "threshold": 1, "window_s": 60}
    payload = {"rule": rule, "event": "firing", "value": 3, "runs": 3, "flow_id": "f"}
    msg = messages.render(payload, "support\r\nbot\t1", None)
    text = messages.slack_payload(msg)["text"]
    assert text.startswith("FIRING: errors now on support bot 1: ")
    assert not any(ch in text for ch in "\r\n\t")
    test = messages.render({"event": "test", "channel": {"name": "on\ncall"}}, None, None)
    assert messages.slack_payload(test)["text"] == "flowhistory test notification for channel on call"


# -- migration 9 -------------------------------------------------------------------------------


def test_migration_9_keeps_webhooks_and_disables_other_kinds_on_downgrade(ctx: Context) -> None:
    setup_flows(ctx)
    hook = service.create_channel(
        ctx, OWNER, ChannelCreate(name="h", url="http://127.0.0.1:9/h", secret="s" * 16)
    )
    mail = email(ctx, "ops@example.com")
    down = migrations.head() - 8  # down to below 9, through the migrations after it
    assert [m.version for m in migrations.downgrade(ctx.store, down)][-1] == 9
    rows = dict(
        ctx.store.read(
            lambda c: c.execute("SELECT id, (enabled, disabled_reason) FROM alert_channels").fetchall()
        )
    )
    assert rows[hook.id] == (True, None)
    assert rows[mail.id] == (False, "email channel: disabled by a schema downgrade (webhooks only)")
    cols = ctx.store.read(
        lambda c: c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'alert_channels'"
        ).fetchall()
    )
    assert {"kind", "config"}.isdisjoint({c[0] for c in cols})
    migrations.upgrade(ctx.store)
    again = {c.id: c for c in ctx.store.read(repo.load_channels)}
    assert again[hook.id].kind == "webhook" and again[hook.id].secret == "s" * 16
    assert again[mail.id].kind == "webhook" and not again[mail.id].enabled  # what it was is gone: kept off


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x85"])
def test_a_unicode_line_break_in_a_name_still_makes_a_mail(breaker: str) -> None:
    """U+2028, U+2029 and NEL were kept: Python's email refused the subject ("the mail could not
    be built"), five failed attempts, and the channel nearer to being disabled."""
    from analytics.alerts import smtp

    rule = {
        "name": f"ru{breaker}le",
        "metric": "error_count",
        "operator": "gt",
        "threshold": 1,
        "window_s": 60,
    }
    msg = messages.render(
        {"rule": rule, "event": "firing", "value": 3, "runs": 3, "flow_id": "f"}, f"fl{breaker}ow", None
    )
    subject = messages.email_subject(msg)
    assert breaker not in subject and breaker not in messages.slack_payload(msg)["text"]
    cfg = smtp.SmtpSettings("127.0.0.1", 25, None, None, "a@example.com", False, False, 5.0)
    mail = smtp.build(cfg, ["o@example.com"], subject, "text", "<p>html</p>")
    assert "ru le on fl ow" in str(mail["Subject"])
