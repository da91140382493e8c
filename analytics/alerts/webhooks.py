"""Channel delivery: signed JSON POSTs, Slack messages and emails, retried with exponential
backoff on threads of their own.

A notification carries the webhook payload; a Slack or email channel gets it rendered in words
(analytics/alerts/messages.py) at each attempt, and the delivery log keeps what was sent to it.
Slack and email go through the same queue, retries, delivery log and auto-disabling as signed
webhooks; an email attempt's status code is the SMTP reply code (analytics/alerts/smtp.py).

Evaluation hands a notification over and returns; nothing here ever runs on the writer or
blocks ingest. One scheduler thread keeps a heap of attempts by due time and hands each to a
small pool of senders, one attempt per channel at a time (so a channel sees its notifications
in order, and a streak of failures stops exactly at the limit). Every attempt is recorded (status code or error, duration, whether it
will be retried) through the writer, in the same transaction as the channel's failure streak:
a 2xx resets it, and the `max_failures`-th failed attempt in a row disables the channel with
the reason stored on it. Attempts still queued for a disabled channel are dropped.

A notification is kept in the store's outbox (`alert_outbox`) from when it is queued until its
last attempt, so a retry still waiting when the server stops is made after the next start (a
notification may then be sent twice, if the stop came between a send and its record: receivers
de-duplicate by `id`). The engine writes a notification's row in the transaction of the state
change that caused it and then `push`es it here, so a crash never leaves one without the other.

Signature: `X-Flowhistory-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the
channel's secret>`; `X-Flowhistory-Timestamp` is the send time (epoch seconds) and
`X-Flowhistory-Delivery` the attempt's id. The body carries `id` (the notification, the same on
every retry) and `occurred_at`, both covered by the signature, for receivers that de-duplicate.

Where it goes: each attempt vets the URL again (analytics/alerts/egress.py: public addresses only
unless the admin allows more) and connects to the vetted address, with the URL's host in Host and
SNI. Redirects are not followed: a 3xx is a failed attempt. What an attempt records (and the test
send answers) is the status code and a short error class, never what the receiver answered: that
would let a caller read whatever the server can reach.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from analytics.alerts import egress, messages, smtp
from analytics.alerts import repository as repo
from analytics.alerts.channels import ChannelKind, require_https
from analytics.core.clock import iso_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import NotFound
from analytics.core.jsonio import dumps

log = logging.getLogger("flowhistory.alerts")

SIGNATURE_HEADER = "X-Flowhistory-Signature"
TIMESTAMP_HEADER = "X-Flowhistory-Timestamp"
DELIVERY_HEADER = "X-Flowhistory-Delivery"
EVENT_HEADER = "X-Flowhistory-Event"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), signature)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel; `body` is signed and sent as is on every attempt."""

    id: str
    channel_id: str
    event: str
    body: bytes
    rule_id: str | None = None
    flow_id: str | None = None
    transition_id: str | None = None


def outbox_rows(notifications: list[Notification], queued_at: datetime) -> list[tuple[Any, ...]]:
    """The outbox rows (repository.OUTBOX_COLUMNS) of these notifications' first attempts."""
    return [
        (n.id, n.channel_id, n.event, n.body.decode(), n.rule_id, n.flow_id, n.transition_id, 1, queued_at)
        for n in notifications
    ]


@dataclass(order=True)
class _Attempt:
    due: float
    seq: int
    notification: Notification = field(compare=False)
    attempt: int = field(compare=False, default=1)
    order: int = field(compare=False, default=0)  # when first queued: kept by its retries


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    max_failures: int = 10
    workers: int = 4

    @classmethod
    def from_context(cls, ctx: Context) -> DispatchSettings:
        s = ctx.settings
        return cls(
            timeout_s=s.alert_webhook_timeout_s,
            max_attempts=s.alert_webhook_max_attempts,
            backoff_s=s.alert_webhook_backoff_s,
            backoff_max_s=s.alert_webhook_backoff_max_s,
            max_failures=s.alert_channel_max_failures,
            workers=s.alert_webhook_workers,
        )


class WebhookDispatcher:
    def __init__(
        self,
        ctx: Context,
        settings: DispatchSettings | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        resume: bool = True,
    ) -> None:
        """`resume=False` for a dispatcher of the call (a channel test): the outbox is the
        server's dispatcher's; a second one resuming it sent each queued notification again."""
        self._ctx = ctx
        self.settings = settings or DispatchSettings.from_context(ctx)
        self._clock = clock
        self._heap: list[_Attempt] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._busy: set[str] = set()  # channels with an attempt in flight
        # notification attempts by outcome (test sends not counted): the /metrics counts
        self.attempts: dict[str, int] = {"ok": 0, "failed": 0}
        self._closed = False
        self._local = threading.local()
        self._allow = egress.AllowList.parse(ctx.settings.alert_webhook_allow)
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="flowhistory-webhook")
        self._thread = threading.Thread(target=self._loop, name="flowhistory-webhooks", daemon=True)
        self._thread.start()
        if resume:
            self._resume()

    # -- public ------------------------------------------------------------------------------

    def enqueue(self, notifications: list[Notification]) -> None:
        """Keep these notifications in the outbox (a write of their own), then `push` them: for
        callers with no transaction of their own to write them in. The engine writes its
        notifications in the transaction of the states that caused them (`outbox_rows`) and
        only pushes them: a crash between two writes would lose them."""
        if not notifications or self._closed:
            return
        rows = outbox_rows(notifications, utc_now())
        try:
            self._ctx.store.write(lambda c: repo.queue_notifications(c, rows))
        except Exception:  # the store cannot take it (full, closing): still sent, not resumed
            log.exception("alert notifications could not be kept for a restart; sending them anyway")
        self.push(notifications)

    def push(self, notifications: list[Notification]) -> None:
        """Queue first attempts now of notifications already in the outbox; writes nothing.
        A closed dispatcher drops them: their rows stay, and the next start resumes them."""
        self._push([(n, 1) for n in notifications])

    def _resume(self) -> None:
        """What a previous run queued and did not finish: each at its next attempt, now."""
        rows = self._ctx.store.read(repo.queued_notifications)
        if rows:
            log.info("resuming %d alert notification(s) queued before the restart", len(rows))
        self._push(
            [
                (Notification(nid, channel, event, body.encode(), rule, flow, transition), attempt)
                for nid, channel, event, body, rule, flow, transition, attempt, _ in rows
            ]
        )

    def _push(self, attempts: list[tuple[Notification, int]]) -> None:
        with self._cond:
            if self._closed:
                return
            now = time.monotonic()
            for n, attempt in attempts:
                seq = next(self._seq)
                heapq.heappush(self._heap, _Attempt(now, seq, n, attempt, order=seq))
            self._cond.notify()

    def send_test(self, channel_id: str) -> repo.Delivery:
        """One attempt now, on the caller's thread, with event "test"; it does not count
        towards disabling the channel, and works on a disabled one (to check it first)."""
        channel = self._ctx.store.read(lambda c: repo.get_channel(c, channel_id))
        if channel is None:
            raise NotFound("Channel not found")
        now = self._clock()
        nid = str(uuid.uuid4())  # one id: the body's and the delivery log's (they differed)
        body = dumps(
            {
                "id": nid,
                "event": "test",
                "occurred_at": iso_utc(now),
                "channel": {"id": channel.id, "name": channel.name},
                "message": "a test notification from flowhistory",
            }
        )
        n = Notification(nid, channel.id, "test", body)
        delivery, _ = self._attempt(n, 1, counts=False, retry_allowed=False)
        return delivery

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued or being sent (tests, the CLI before it exits)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------------

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                deferred = []
                first = self._first_queued()
                while self._heap and self._heap[0].due <= now:
                    item = heapq.heappop(self._heap)
                    channel = item.notification.channel_id
                    # one attempt per channel at a time, in the order queued: a notification
                    # waits for a retry of an earlier one (a RESOLVED must not overtake its FIRING)
                    if channel in self._busy or first[channel] < item.order:
                        deferred.append(item)
                        continue
                    self._busy.add(channel)
                    self._in_flight += 1
                    self._pool.submit(self._run, item)
                for item in deferred:
                    heapq.heappush(self._heap, item)
                later = [a.due for a in self._heap if a.due > now]
                self._cond.wait((min(later) - now) if later else None)

    def _run(self, item: _Attempt) -> None:
        ok = False
        try:
            delivery, retry = self._attempt(item.notification, item.attempt, counts=True, retry_allowed=True)
            ok = delivery.ok
            if retry:
                delay = min(self.settings.backoff_max_s, self.settings.backoff_s * 2 ** (item.attempt - 1))
                with self._cond:
                    if not self._closed:
                        heapq.heappush(
                            self._heap,
                            _Attempt(
                                time.monotonic() + delay,
                                next(self._seq),
                                item.notification,
                                item.attempt + 1,
                                item.order,
                            ),
                        )
        except NotFound:  # the channel was deleted meanwhile (its outbox rows with it)
            pass
        except Exception:  # a recording failure (store closing) must not kill the pool
            log.exception("webhook attempt failed to run")
        finally:
            with self._cond:
                self.attempts["ok" if ok else "failed"] += 1
                self._in_flight -= 1
                self._busy.discard(item.notification.channel_id)
                self._cond.notify_all()

    def _first_queued(self) -> dict[str, int]:
        """Each channel's oldest queued notification (by first queueing), due or not."""
        first: dict[str, int] = {}
        for item in self._heap:
            channel = item.notification.channel_id
            first[channel] = min(first.get(channel, item.order), item.order)
        return first

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            # no kept-alive connections: one is keyed by the address, and a later attempt to
            # another host on that address must not reuse a TLS session made for the first
            client = httpx.Client(
                timeout=self.settings.timeout_s,
                follow_redirects=False,
                trust_env=False,  # a proxy would resolve the host again, after our check
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            self._local.client = client
        return client

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """(status, error): the status code, and a short class of what went wrong, if anything."""
        try:
            target = egress.resolve(url, self._allow)
        except egress.EgressRefused as exc:
            return None, f"not sent: {exc.reason}"[:300]
        headers = {**headers, "Host": target.host_header}
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        try:  # streamed and closed unread: the answer's body is never needed, however large
            with self._client().stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response:
                status, redirect = response.status_code, response.is_redirect
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}: redirect not followed" if redirect else f"HTTP {status}"

    def _message(self, n: Notification) -> messages.Message:
        payload = orjson.loads(n.body)
        flow_id = payload.get("flow_id")
        name = self._ctx.store.read(lambda c: repo.flow_name(c, flow_id)) if flow_id else None
        public = self._ctx.settings.public_url
        return messages.render(payload, name, str(public) if public is not None else None)

    def _send_slack(
        self, channel: repo.Channel, n: Notification
    ) -> tuple[bool, int | None, str | None, bytes]:
        """The notification in words, POSTed unsigned (Slack checks no signature) to the
        incoming-webhook URL, through the same egress guard; https unless the admin allows the host."""
        body = dumps(messages.slack_payload(self._message(n)))
        try:
            require_https(channel.url, self._allow)
        except egress.EgressRefused as exc:
            return False, None, f"not sent: {exc.reason}"[:300], body
        headers = {"Content-Type": "application/json", "User-Agent": "flowhistory-webhooks/1"}
        status, error = self._post(channel.url, body, headers)
        return error is None, status, error, body

    def _send_email(
        self, channel: repo.Channel, n: Notification
    ) -> tuple[bool, int | None, str | None, bytes]:
        """A plain-text and HTML mail to the channel's recipients through the admin's SMTP
        server; recorded as what was sent (addresses, subject, text), the SMTP code or error."""
        msg = self._message(n)
        recipients = channel.recipients or []
        subject, text = messages.email_subject(msg), messages.email_text(msg)
        record = dumps({"to": recipients, "subject": subject, "text": text})
        cfg = smtp.SmtpSettings.from_settings(self._ctx.settings)
        if cfg is None:
            return False, None, "not sent: no SMTP server is configured (FLOWHISTORY_SMTP_HOST)", record
        try:
            mail = smtp.build(cfg, recipients, subject, text, messages.email_html(msg))
        except (ValueError, TypeError) as exc:  # a From address the email package cannot use
            return False, None, f"not sent: the mail could not be built ({type(exc).__name__})", record
        outcome = smtp.send(cfg, mail, recipients)
        return outcome.ok, outcome.code, outcome.error, record

    def _attempt(
        self, n: Notification, attempt: int, *, counts: bool, retry_allowed: bool
    ) -> tuple[repo.Delivery, bool]:
        channel = self._ctx.store.read(lambda c: repo.get_channel(c, n.channel_id))
        if channel is None:
            raise NotFound("Channel not found")
        started = time.perf_counter()
        at = self._clock()
        status: int | None = None
        error: str | None = None
        delivery_id = str(uuid.uuid4())
        sent = n.body
        if counts and not channel.enabled:
            error = f"not sent: channel disabled ({channel.disabled_reason})"
            ok = False
        elif channel.kind == ChannelKind.SLACK:
            ok, status, error, sent = self._send_slack(channel, n)
        elif channel.kind == ChannelKind.EMAIL:
            ok, status, error, sent = self._send_email(channel, n)
        else:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "flowhistory-webhooks/1",
                SIGNATURE_HEADER: sign(channel.secret, n.body),
                TIMESTAMP_HEADER: str(int(time.time())),
                DELIVERY_HEADER: delivery_id,
                EVENT_HEADER: n.event,
            }
            status, error = self._post(channel.url, n.body, headers)
            ok = error is None
        skipped = counts and not channel.enabled
        disables = (
            counts
            and not ok
            and not skipped
            and (channel.consecutive_failures + 1 >= self.settings.max_failures)
        )
        will_retry = (
            retry_allowed and not ok and not skipped and not disables and attempt < self.settings.max_attempts
        )
        delivery = repo.Delivery(
            delivery_id,
            n.id,
            n.channel_id,
            n.rule_id,
            n.flow_id,
            n.transition_id,
            n.event,
            attempt,
            at,
            ok,
            status,
            error,
            round((time.perf_counter() - started) * 1000, 3),
            will_retry,
            sent.decode(),
        )
        after = self._ctx.store.write(
            lambda c: repo.record_attempt(
                c, delivery, counts=counts and not skipped, max_failures=self.settings.max_failures, now=at
            )
        )
        if will_retry and after is not None and not after.enabled:
            will_retry = False  # the failure that disabled it: nothing more is sent
            self._ctx.store.write(lambda c: repo.drop_queued(c, n.id, n.channel_id))
        return delivery, will_retry
