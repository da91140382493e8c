"""Alerts screen: rules with validation next to the field, state after evaluation, history,
webhook channels with "send test" reaching a real HTTP receiver and the delivery log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in, standard_runs


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
    page.get_by_label("Alert threshold").fill("150")  # a failure rate is entered in percent
    page.get_by_label("Window").fill("1d")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#r-threshold-error")).to_contain_text("a percentage from 0 to 100")
    page.get_by_label("Alert threshold").fill("20")
    page.get_by_label("Window").fill("soon")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#r-window-error")).not_to_be_empty()  # the API's message, by its field
    shot("rule-invalid")
    page.get_by_label("Window").fill("1d")
    page.get_by_role("checkbox", name="ops").check()
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Failure rate > 20 % over 1 d")

    row.get_by_role("button", name="Evaluate now").click()
    expect(page.locator('#rules-table [data-state="FIRING"]')).to_be_visible()
    expect(page.locator("#rules-table")).to_contain_text("now 25.0 %")
    expect(page.locator("#transitions-table tbody tr").first).to_contain_text("FIRING")
    expect(page.locator("#transitions-table tbody tr").first).to_contain_text(
        "failure rate 25.0 % > 20 % over the last 1 d (4 runs)"
    )
    shot("rule-firing")
    rules = api.get("/api/v1/alerts/rules", flow_id=flow_id)
    assert [r["name"] for r in rules] == ["too many failures"]

    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Alert threshold")).to_have_value("20")
    page.get_by_label("Alert threshold").fill("50")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rules-table tbody tr")).to_contain_text("> 50 % over 1 d")
    assert api.get("/api/v1/alerts/rules", flow_id=flow_id)[0]["threshold"] == 0.5


SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.mark.parametrize("size", list(SIZES))
def test_every_rule_option_percent_in_fraction_stored_why_in_words_and_silences(
    browser: Any, live: LiveApp, api: Api, request: Any, size: str
) -> None:
    width, height = SIZES[size]
    flow_id = api.create_flow(f"rule options {size}")
    api.batch(standard_runs(flow_id))  # last 24 hours: 4 runs, 1 error: 25 %
    page = new_page(browser, live, width=width, height=height)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}/alerts")
        page.get_by_role("button", name="New rule").click()
        form = page.locator("#rule-form")
        page.get_by_label("Name", exact=True).fill("failing too often")
        expect(form.locator(".unit").first).to_have_text(" (%)")
        page.get_by_label("Alert threshold").fill("16.2")
        page.get_by_label("Warning threshold").fill("20")  # above the alert threshold: refused, in percent
        page.get_by_role("button", name="Create rule").click()
        expect(page.locator("#r-warning_threshold-error")).to_have_text(
            "must be below the alert threshold 16.2 %"
        )
        page.get_by_label("Warning threshold").fill("10")
        page.get_by_label("Recovery threshold").fill("12.5")
        page.get_by_label("Window").fill("1d")
        page.get_by_label("Min runs").fill("2")
        page.get_by_label("Pending period").fill("15m")
        page.get_by_label("Keep firing for").fill("30m")
        page.get_by_label("Re-notify every").fill("2h")
        page.get_by_label("When there are no runs").select_option("keep_last")
        shot("rule-form-filled")
        page.get_by_role("button", name="Create rule").click()
        row = page.locator("#rules-table tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Failure rate > 16.2 % over 1 d")
        expect(row).to_contain_text(
            "warning > 10 % · recovers at ≤ 12.5 % · pending 15 min · keeps firing 30 min"
        )
        [rule] = api.get("/api/v1/alerts/rules", flow_id=flow_id)
        stored = {
            k: rule[k]
            for k in (
                "threshold",
                "warning_threshold",
                "recovery_threshold",
                "window",
                "min_runs",
                "pending_for",
                "keep_firing_for",
                "renotify_every",
                "no_data",
                "operator",
            )
        }
        assert stored == {
            "threshold": 0.162,
            "warning_threshold": 0.1,
            "recovery_threshold": 0.125,
            "window": 86400,
            "min_runs": 2,
            "pending_for": 900,
            "keep_firing_for": 1800,
            "renotify_every": 7200,
            "no_data": "keep_last",
            "operator": "gt",
        }

        row.get_by_role("button", name="Evaluate now").click()
        expect(page.locator('#rules-table [data-state="PENDING"]')).to_be_visible()
        why = page.locator("#transitions-table tbody tr").first.locator(".why")
        expect(why).to_have_text(
            "failure rate 25.0 % > 16.2 % over the last 1 d (4 runs); fires if it holds for 15 min"
        )

        # a silence of this rule, from its row
        page.get_by_role("button", name="Silence rule failing too often").click()
        expect(page.locator("#s-target")).to_have_value(rule["id"])
        page.locator("#s-duration").fill("90m")
        page.locator("#s-comment").fill("deploy in progress")
        page.get_by_role("button", name="Silence", exact=True).click()
        silences = page.locator("#silences-table tbody tr")
        expect(silences).to_have_count(1)
        expect(silences.first).to_contain_text("deploy in progress")
        expect(page.locator("#rules-table [data-silenced]")).to_contain_text("silenced")
        expect(page.locator("#rules-table [data-silenced]")).to_contain_text("until ")
        [silence] = api.get("/api/v1/alerts/silences", flow_id=flow_id)
        assert (silence["rule_id"], silence["ends_at"] - silence["starts_at"], silence["status"]) == (
            rule["id"],
            5400,
            "active",
        )

        # the edit form shows percent again; no pending period any more: it fires, silenced
        page.locator("#rules-table tbody tr").get_by_role("button", name="Edit").click()
        expect(page.get_by_label("Alert threshold")).to_have_value("16.2")
        expect(page.get_by_label("Recovery threshold")).to_have_value("12.5")
        expect(page.get_by_label("Re-notify every")).to_have_value("2h")
        page.get_by_label("Pending period").fill("")
        page.get_by_role("button", name="Save rule").click()
        expect(page.locator("#rules-table tbody tr")).not_to_contain_text("pending 15 min")
        assert api.get("/api/v1/alerts/rules", flow_id=flow_id)[0]["pending_for"] == 0
        page.locator("#rules-table tbody tr").get_by_role("button", name="Evaluate now").click()
        expect(page.locator('#rules-table [data-state="FIRING"]')).to_be_visible()
        first = page.locator("#transitions-table tbody tr").first
        expect(first.locator(".why")).to_contain_text(
            "failure rate 25.0 % > 16.2 % over the last 1 d (4 runs)"
        )
        expect(first.locator("[data-silenced]")).to_have_text("not notified: silenced")
        assert api.get("/api/v1/alerts/transitions", flow_id=flow_id)[0]["silenced_by"] == silence["id"]
        shot("rule-firing-silenced")

        # a flow silence: bad input is named by its field; then it is listed, then expired
        page.locator("#s-target").select_option("")
        page.locator("#s-duration").fill("3000d")
        page.locator("#s-comment").fill("holidays")
        page.get_by_role("button", name="Silence", exact=True).click()
        expect(page.locator("#s-duration-error")).not_to_be_empty()
        page.locator("#s-duration").fill("1d")
        page.locator("#s-comment").fill("")
        page.get_by_role("button", name="Silence", exact=True).click()
        expect(page.locator("#s-comment-error")).to_contain_text("say why")
        page.locator("#s-comment").fill("holidays")
        page.get_by_role("button", name="Silence", exact=True).click()
        expect(silences).to_have_count(2)
        shot("silences")
        page.get_by_role("button", name="Expire silence of Rule “failing too often”").click()
        expect(page.locator('#silences-table tbody tr[data-status="expired"]')).to_have_count(1)
        expect(page.locator('#silences-table tbody tr[data-status="expired"]')).to_contain_text(
            "ended by admin"
        )
        # the flow's own silence still mutes the rule
        expect(page.locator("#rules-table [data-silenced]")).to_have_count(1)
        page.get_by_role("button", name="Expire silence of Every rule on this flow").click()
        expect(page.locator('#silences-table tbody tr[data-status="expired"]')).to_have_count(2)
        expect(page.locator("#rules-table [data-silenced]")).to_have_count(0)
        assert api.get("/api/v1/alerts/silences", flow_id=flow_id, active=True) == []
        # a window with no runs reads as such, whatever the metric (a count is 0 then)
        quiet = api.ok(
            api.http.post(
                "/api/v1/alerts/rules",
                json={
                    "flow_id": flow_id,
                    "name": "quiet",
                    "metric": "run_count",
                    "operator": "lt",
                    "threshold": 1,
                    "window": "30m",
                },
            )
        )
        api.ok(api.http.post(f"/api/v1/alerts/rules/{quiet['id']}/evaluate"))
        page.reload()
        quiet_row = page.locator("#transitions-table tbody tr", has_text="quiet")
        expect(quiet_row.locator(".why")).to_have_text("no runs in the last 30 min")
        width_now = page.evaluate("document.documentElement.scrollWidth")
        assert width_now <= width, f"the alerts screen is {width_now}px wide on a {width}px screen"
        shot("silences-expired")
        assert not page.js_errors
    finally:
        page.context.close()
