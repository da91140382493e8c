"""Alerts screen: rules with validation next to the field, state after evaluation, history,
webhook channels with "send test" reaching a real HTTP receiver and the delivery log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, sign_in, standard_runs


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


def test_rules_are_validated_created_evaluated_and_channels_tested(
    page: Any, shot: Any, api: Api, webhook: tuple[str, list[bytes]]
) -> None:
    url, received = webhook
    flow_id = api.create_flow("alerting")
    api.batch(standard_runs(flow_id))  # last 24 hours: 4 runs, 1 error
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/alerts")
    expect(page.get_by_text("No alert rules")).to_be_visible()
    shot("alerts-empty")

    page.get_by_label("Channel name").fill("ops")
    page.get_by_label("URL").fill("not a url")
    page.get_by_label("Signing secret").fill("0123456789abcdef-secret")
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator("#c-url-error")).not_to_be_empty()
    page.get_by_label("URL").fill(url)
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator("#channels-table tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Send test to ops").click()
    expect(page.locator("#alerts-status")).to_contain_text("Test sent to ops: HTTP 204")
    expect(page.locator("#deliveries-table tbody tr")).to_have_count(1)
    assert len(received) == 1

    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name", exact=True).fill("too many failures")
    page.get_by_label("Alert threshold").fill("5")  # a failure rate is a fraction
    page.get_by_label("Window").fill("1d")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#r-threshold-error")).to_contain_text("failure_rate is a fraction from 0 to 1")
    shot("rule-invalid")
    page.get_by_label("Alert threshold").fill("0.2")
    page.get_by_role("checkbox", name="ops").check()
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("> 0.2 over 1d")

    row.get_by_role("button", name="Evaluate now").click()
    expect(page.locator('#rules-table [data-state="FIRING"]')).to_be_visible()
    expect(page.locator("#rules-table")).to_contain_text("now 25.0 %")
    expect(page.locator("#transitions-table tbody tr").first).to_contain_text("FIRING")
    shot("rule-firing")
    rules = api.get("/api/v1/alerts/rules", flow_id=flow_id)
    assert [r["name"] for r in rules] == ["too many failures"]

    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Alert threshold").fill("0.5")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rules-table tbody tr")).to_contain_text("> 0.5 over 1d")
    assert api.get("/api/v1/alerts/rules", flow_id=flow_id)[0]["threshold"] == 0.5
