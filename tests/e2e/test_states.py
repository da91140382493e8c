"""Designed states: empty flow, server errors (4xx, 5xx), phone width, keyboard and focus."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in


def test_a_flow_without_runs_shows_empty_states(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("brand-new")
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    expect(page.get_by_text("No runs yet")).to_be_visible()
    expect(page.locator('[data-stat="total"] .value')).to_have_text("0")
    expect(page.locator('[data-stat="success_rate"] .value')).to_have_text("—")
    expect(page.get_by_role("button", name="Delete all runs")).to_be_disabled()
    shot("history-empty")
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_text("No runs in this range")).to_be_visible()
    expect(page.locator("#charts figure")).to_have_count(0)  # no charts of nothing
    expect(page.get_by_text("No failures in this range")).to_be_visible()
    shot("analytics-empty")


def test_server_errors_are_shown_not_swallowed(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    sign_in(page, api.key)
    page.goto("/#/flows/no-such-flow")
    expect(page.locator(".error-panel")).to_contain_text("404")
    expect(page.locator(".error-panel")).to_contain_text("not found")
    shot("404")
    # The real server gives no 500 on demand: this one answer is replaced, the rest is real.
    page.route(
        "**/api/v1/executions/search",
        lambda route: route.fulfill(status=500, json={"detail": "Internal server error"}),
    )
    page.goto(f"/#/flows/{seeded['flow_id']}")
    panel = page.locator("#runs .error-panel")
    expect(panel).to_contain_text("The server could not answer")
    expect(panel).to_contain_text("500: Internal server error")
    expect(page.locator('[data-stat="total"] .value')).to_have_text("12")  # the rest of the page works
    shot("500")
    page.unroute("**/api/v1/executions/search")
    panel.get_by_role("button", name="Try again").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 12 of 12 runs")


def test_phone_width_has_no_horizontal_overflow(
    browser: Any, live: LiveApp, api: Api, seeded: dict, request: Any
) -> None:
    page = new_page(browser, live, width=390, height=844)
    shot = Screens(page, request.node.name)
    flow_id, ids = seeded["flow_id"], seeded["ids"]
    try:
        page.goto("/")
        shot("sign-in")
        sign_in(page, api.key)
        screens = {
            "flows": ("/#/", "#flows-table"),
            "history": (f"/#/flows/{flow_id}", "#runs-summary"),
            "detail": (f"/#/flows/{flow_id}/runs/{ids[1]}", "#nodes"),
            "compare": (f"/#/compare/{ids[0]}/{ids[1]}", "#compare-nodes"),
            "analytics": (f"/#/flows/{flow_id}/analytics", 'figure[data-chart="cost"][data-drawn="true"]'),
            "jobs": ("/#/jobs", "h1"),
            "sql": ("/#/sql", "#sql"),
        }
        for name, (url, ready) in screens.items():
            page.goto(url)
            page.locator(ready).first.wait_for()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name} is {width}px wide on a 390px screen"
            shot(name)
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_keyboard_only_sign_in_and_visible_focus(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    page.goto("/")
    expect(page.get_by_label("API key or Open WebUI token")).to_be_focused()
    page.keyboard.type(api.key)
    page.keyboard.press("Enter")
    expect(page.locator("#flows-table")).to_be_visible()
    page.reload()  # focus starts at the top of the page, the session is kept
    expect(page.locator("#flows-table")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")  # to the content, on the same page (it opened "Page not found")
    expect(page.locator("#view")).to_be_focused()
    expect(page.locator("#flows-table")).to_be_visible()
    assert "#view" not in page.url
    page.reload()
    expect(page.locator("#flows-table")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="flowhistory")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    for _ in range(40):  # past the nav and any flows listed before it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "support-bot":
            break
    expect(page.get_by_role("link", name="support-bot")).to_be_focused()
    shot("focus-ring", full_page=False)
    page.keyboard.press("Enter")
    expect(page.locator("#runs-summary")).to_have_text("Showing 12 of 12 runs")
