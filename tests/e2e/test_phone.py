"""Phone width (390 px): every action button in a table can be reached, and form fields never overlap."""

from __future__ import annotations

import itertools
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in, standard_runs

WIDTH = 390


def _reachable(page: Any, table: str) -> int:
    """Scroll each button of `table` into view (its container scrolls) and check it lies on screen."""
    buttons = page.locator(f"{table} tbody button")
    n = buttons.count()
    assert n, f"{table} has no action buttons"
    for i in range(n):
        button = buttons.nth(i)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None, f"{table} button {i} has no box"
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, f"{table} button {i} off screen: {box}"
        # not clipped by its scrolling container either
        wrap = button.evaluate(
            "b => { const r = b.closest('.table-wrap').getBoundingClientRect(); return [r.left, r.right]; }"
        )
        assert wrap[0] - 0.5 <= box["x"] and box["x"] + box["width"] <= wrap[1] + 0.5, (
            f"{table} button {i} clipped: {box} in {wrap}"
        )
    return n


def _no_page_overflow(page: Any, name: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{name} is {width}px wide on a {WIDTH}px screen"


def test_phone_tables_keep_their_buttons_reachable_and_forms_do_not_overlap(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    flow_id = api.create_flow("phone-width-flow-with-a-rather-long-name")
    api.batch(standard_runs(flow_id))
    channel = api.ok(
        api.http.post(
            "/api/v1/alerts/channels",
            json={
                "name": "ops-phone",
                "url": "http://127.0.0.1:9/a/rather/long/webhook/path/that/does/not/wrap/easily",
                "secret": "0123456789abcdef-secret",
            },
        )
    )
    api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "flow_id": flow_id,
                "name": "failure rate on the phone",
                "metric": "failure_rate",
                "operator": "gt",
                "threshold": 0.2,
                "window": "1d",
                "channel_ids": [channel["id"]],
            },
        )
    )
    page = new_page(browser, live, width=WIDTH, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator("#runs-table tbody tr")).to_have_count(12)
        assert _reachable(page, "#runs-table") == 12
        _no_page_overflow(page, "history")
        shot("history")

        page.goto(f"/#/flows/{flow_id}/alerts")
        expect(page.locator("#rules-table tbody tr")).to_have_count(1)
        assert _reachable(page, "#rules-table") == 5  # edit, evaluate, pause, silence, delete
        assert _reachable(page, "#channels-table") >= 2
        _no_page_overflow(page, "alerts")
        fields = ["#c-name", "#c-url", "#c-secret", '#channel-form button[type="submit"]']
        boxes = {}
        for sel in fields:
            page.locator(sel).scroll_into_view_if_needed()
            box = page.locator(sel).bounding_box()
            assert box is not None and box["width"] > 0
            assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, f"{sel} off screen: {box}"
            boxes[sel] = (box["x"], box["y"] + page.evaluate("scrollY"), box["width"], box["height"])
        for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
            overlap_x = min(ba[0] + ba[2], bb[0] + bb[2]) - max(ba[0], bb[0])
            overlap_y = min(ba[1] + ba[3], bb[1] + bb[3]) - max(ba[1], bb[1])
            assert overlap_x <= 0 or overlap_y <= 0, f"{a} {ba} overlaps {b} {bb}"
        page.locator("#channel-form").scroll_into_view_if_needed()
        shot("alerts", full_page=True)

        page.goto("/#/jobs")
        expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
        assert _reachable(page, "#jobs-table") == page.locator("#jobs-table tbody tr").count()
        _no_page_overflow(page, "jobs")
        shot("jobs")

        page.goto(f"/#/flows/{flow_id}/retention")
        expect(page.locator("#retention-jobs h2").first).to_be_visible()
        _no_page_overflow(page, "retention")
        shot("retention")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
