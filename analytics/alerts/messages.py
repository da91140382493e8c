"""Alerts for people: the webhook payload rendered as a Slack message or an email.

A signed webhook gets the machine payload (analytics/alerts/engine.py builds it); Slack and
email get the same facts in words: the rule's name, the flow, the state change, the value
against the threshold in the rule's units (a failure rate in percent, a p95 in ms or s, a cost
in USD), why, and a link to the flow's alerts screen when FLOWHISTORY_PUBLIC_URL is set.
Everything a user typed (rule and flow names) is escaped for where it lands: Slack's mrkdwn
(`<!channel>` must not ping anyone), HTML, and a one-line mail subject.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

_OPERATORS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
_METRICS = {
    "failure_rate": "failure rate",
    "error_count": "errors",
    "run_count": "runs",
    "p95_duration": "p95 duration",
    "cost": "cost",
}
_TITLES = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "warning": "WARNING",
    "no_data": "NO DATA",
    "test": "TEST",
}
_ICONS = {
    "firing": ":red_circle:",
    "resolved": ":white_check_mark:",
    "warning": ":large_orange_circle:",
    "no_data": ":white_circle:",
    "test": ":wave:",
}
# C0 and C1 controls and Unicode's line and paragraph separators: Python's email refuses a header
# holding U+2028 (the mail could not be built, five failed attempts, the channel nearer disabled)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True, slots=True)
class Message:
    event: str
    title: str  # "FIRING: too many failures"
    summary: str  # one line: Slack's notification text, the mail subject
    facts: list[tuple[str, str]]  # (label, value), in order
    link: str | None


def format_value(metric: str, value: float | None) -> str:
    """A measured value or threshold in the rule's units."""
    if value is None:
        return "no data"
    if metric == "failure_rate":  # two significant digits below 1 %: 0.04 % is not "0.0 %"
        pct = value * 100
        if pct == 0 or abs(pct) >= 1:
            return f"{pct:.1f} %"
        text = f"{pct:.{min(12, 1 - math.floor(math.log10(abs(pct))))}f}".rstrip("0")
        return f"{text}0 %" if text.endswith(".") else f"{text} %"  # 0.999 rounds to "1.0 %"
    if metric == "p95_duration":  # milliseconds
        if value < 1000:
            return f"{value:.0f} ms"
        if value < 60_000:
            return f"{value / 1000:.2f} s"
        return f"{value / 60_000:.1f} min"
    if metric == "cost":  # two significant digits at least: $0.000020 is not "$0.0000"
        if value == 0 or abs(value) >= 1:
            return f"${value:,.2f}"
        return f"${value:,.{min(12, max(4, 1 - math.floor(math.log10(abs(value)))))}f}"
    return f"{value:,.0f}"


def one_line(name: str) -> str:
    """A name someone typed, fit for a one-line text (Slack's `text`, a title, a subject): a
    line break or other control character in it is a space."""
    return _CONTROL.sub(" ", name)


def window_text(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def dashboard_link(public_url: str | None, flow_id: str | None) -> str | None:
    if not public_url or not flow_id:
        return None
    return f"{public_url.rstrip('/')}/#/flows/{quote(flow_id, safe='')}/alerts"


def render(payload: dict[str, Any], flow_name: str | None, public_url: str | None) -> Message:
    """The words of a notification (or of a channel's test) from the webhook payload."""
    event = str(payload.get("event", ""))
    if event == "test":
        channel = one_line(str((payload.get("channel") or {}).get("name", "")))
        return Message(
            event,
            "TEST: flowhistory alerts",
            f"flowhistory test notification for channel {channel}",
            [("Channel", channel), ("Sent", str(payload.get("occurred_at", "")))],
            public_url.rstrip("/") + "/" if public_url else None,
        )
    rule = payload.get("rule") or {}
    metric = str(rule.get("metric", ""))
    flow_id = payload.get("flow_id")
    flow = one_line(flow_name or flow_id or "?")
    title = f"{_TITLES.get(event, event.upper())}: {one_line(str(rule.get('name', '?')))}"
    # "alert at" is the rule's threshold; the level this change crossed (recovery, warning) is a
    # fact of its own, not the alert's threshold
    condition = (
        f"{_METRICS.get(metric, metric)} {_OPERATORS.get(str(rule.get('operator')), rule.get('operator'))}"
        f" {format_value(metric, rule.get('threshold'))} over {window_text(int(rule.get('window_s') or 0))}"
    )
    crossed = payload.get("threshold")
    runs = payload.get("runs")
    value = format_value(metric, payload.get("value"))
    if runs is not None:
        value += f" ({runs:,} run{'s' if runs != 1 else ''})"
    change = f"{payload.get('previous_state')} → {payload.get('state')}"
    if payload.get("renotify"):
        change = f"still {payload.get('state')} (reminder)"
    facts = [("Flow", flow), ("Change", change), ("Value", value), ("Threshold", condition)]
    for level in ("warning", "recovery"):
        if (
            crossed is not None
            and crossed != rule.get("threshold")
            and crossed == rule.get(f"{level}_threshold")
        ):
            facts.append((f"{level.capitalize()} level", format_value(metric, crossed)))
    if payload.get("reason"):
        facts.append(("Why", str(payload["reason"])))
    summary = f"{title} on {flow}: {_METRICS.get(metric, metric)} {value}, alert at {condition}"
    return Message(event, title, summary, facts, dashboard_link(public_url, flow_id))


# -- Slack -------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    """Slack's three control characters; `<!channel>` and `<@U123>` then stay plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(msg: Message) -> dict[str, Any]:
    """An incoming-webhook body: `text` (the notification and the fallback) and `blocks`."""
    icon = _ICONS.get(msg.event, ":bell:")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_mrkdwn(msg.title)}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(value)}"}
                for label, value in msg.facts
                if label != "Why"
            ],
        },
    ]
    why = [v for label, v in msg.facts if label == "Why"]
    context = [{"type": "mrkdwn", "text": _mrkdwn(why[0])}] if why else []
    if msg.link:
        context.append({"type": "mrkdwn", "text": f"<{_mrkdwn(msg.link)}|Open in flowhistory>"})
    if context:
        blocks.append({"type": "context", "elements": context})
    return {"text": _mrkdwn(msg.summary), "blocks": blocks}


# -- email -------------------------------------------------------------------------------------


def email_subject(msg: Message) -> str:
    """One line whatever the names hold (a header cannot carry a line break)."""
    return _CONTROL.sub(" ", f"[flowhistory] {msg.summary}")[:250]


def email_text(msg: Message) -> str:
    lines = [msg.title, ""]
    lines += [f"{label}: {_CONTROL.sub(' ', value)}" for label, value in msg.facts]
    if msg.link:
        lines += ["", f"Open in flowhistory: {msg.link}"]
    return "\n".join(lines) + "\n"


def email_html(msg: Message) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in msg.facts
    )
    link = f'<p><a href="{e(msg.link)}">Open in flowhistory</a></p>' if msg.link else ""
    return (
        f'<!doctype html><html><body style="font-family:sans-serif">'
        f"<h2>{e(msg.title)}</h2><table>{rows}</table>{link}</body></html>"
    )
