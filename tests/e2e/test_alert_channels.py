"""Alerts screen: a Slack channel and an email channel created from the channel form, at desktop
and phone widths, their tests reaching a real HTTP receiver and the real SMTP server."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in, standard_runs
from tests.smtp_server import Mailbox


class _Slack(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack_hook() -> Iterator[tuple[str, list[bytes]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slack)
    _Slack.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/x", _Slack.received
    server.shutdown()
    server.server_close()


def _visible_fields_do_not_overlap(page: Any, width: int) -> None:
    """Every shown field of the channel form lies on screen, none on another."""
    boxes = {}
    for el in page.locator("#channel-form .form-row > .field:visible").all():
        el.scroll_into_view_if_needed()
        box = el.bounding_box()
        assert box is not None and box["width"] > 0
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"off screen: {box}"
        key = el.locator("label, button").first.inner_text()
        boxes[key] = (box["x"], box["y"] + page.evaluate("scrollY"), box["width"], box["height"])
    assert len(boxes) >= 3
    for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
        overlap_x = min(ba[0] + ba[2], bb[0] + bb[2]) - max(ba[0], bb[0])
        overlap_y = min(ba[1] + ba[3], bb[1] + bb[3]) - max(ba[1], bb[1])
        assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{a} {ba} overlaps {b} {bb}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_slack_and_email_channels_are_created_and_tested(
    browser: Any,
    live: LiveApp,
    api: Api,
    mailbox: Mailbox,
    slack_hook: tuple[str, list[bytes]],
    width: int,
    request: Any,
) -> None:
    url, received = slack_hook
    flow_id = api.create_flow(f"channel kinds {width}")
    api.batch(standard_runs(flow_id))
    page = new_page(browser, live, width=width, height=900 if width > 400 else 844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}/alerts")
        form = page.locator("#channel-form")
        expect(form.get_by_label("Signing secret")).to_be_visible()  # a signed webhook by default
        expect(form.get_by_label("Recipients")).to_be_hidden()
        _visible_fields_do_not_overlap(page, width)

        # Slack: a URL and no secret
        form.get_by_label("Kind").select_option("slack")
        expect(form.get_by_label("Signing secret")).to_be_hidden()
        expect(form.get_by_label("Slack webhook URL")).to_be_visible()
        _visible_fields_do_not_overlap(page, width)
        slack_name = f"team-slack-{width}"
        form.get_by_label("Channel name").fill(slack_name)
        form.get_by_label("Slack webhook URL").fill("http://hooks.example.com/services/T0/B0/x")
        form.get_by_role("button", name="Add channel").click()
        expect(page.locator("#c-url-error")).to_contain_text("https://")  # a checked 422, next to its field
        form.get_by_label("Slack webhook URL").fill(url)
        form.scroll_into_view_if_needed()
        shot("slack-form", full_page=False)
        form.get_by_role("button", name="Add channel").click()
        row = page.locator("#channels-table tbody tr", has_text=slack_name)
        expect(row).to_have_attribute("data-kind", "slack")
        expect(row).to_contain_text("Slack")
        expect(row).to_contain_text(url)
        row.get_by_role("button", name=f"Send test to {slack_name}").click()
        expect(page.locator("#alerts-status")).to_contain_text(f"Test sent to {slack_name}: HTTP 200")
        [body] = [orjson.loads(b) for b in received]
        assert set(body) == {"text", "blocks"} and slack_name in body["text"]

        # email: recipients, checked next to the field
        form = page.locator("#channel-form")
        form.get_by_label("Kind").select_option("email")
        expect(form.get_by_label("Recipients")).to_be_visible()
        expect(form.get_by_label("URL")).to_be_hidden()
        _visible_fields_do_not_overlap(page, width)
        mail_name = f"on-call-{width}"
        form.get_by_label("Channel name").fill(mail_name)
        form.get_by_label("Recipients").fill("ops@example.com, not-an-address")
        form.get_by_role("button", name="Add channel").click()
        expect(page.locator("#c-recipients-error")).to_contain_text("not-an-address")
        form.scroll_into_view_if_needed()
        shot("email-invalid", full_page=False)
        form.get_by_label("Recipients").fill(f"ops-{width}@example.com, oncall@example.com")
        form.get_by_role("button", name="Add channel").click()
        row = page.locator("#channels-table tbody tr", has_text=mail_name)
        expect(row).to_have_attribute("data-kind", "email")
        expect(row).to_contain_text(f"ops-{width}@example.com, oncall@example.com")
        before = len(mailbox.got)
        row.get_by_role("button", name=f"Send test to {mail_name}").click()
        expect(page.locator("#alerts-status")).to_contain_text(f"Test sent to {mail_name}: SMTP 250")
        expect(page.locator("#deliveries-table tbody tr")).to_have_count(1)
        [(_, to, msg)] = mailbox.got[before:]
        assert to == [f"ops-{width}@example.com", "oncall@example.com"] and mail_name in str(msg["Subject"])

        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for button in page.locator(
            "#channels-table tbody button"
        ).all():  # reachable, as tests/e2e/test_phone.py
            button.scroll_into_view_if_needed()
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        page.locator("#channels").scroll_into_view_if_needed()
        shot("channels")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
        for c in api.get("/api/v1/alerts/channels"):  # the session's store is shared: leave no channel behind
            if c["name"].endswith(f"-{width}"):
                api.ok(api.http.delete(f"/api/v1/alerts/channels/{c['id']}"))
