"""Search across flows (#/search): the API's filters as a form, kept in the URL, results linking to runs."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import ERRORS, Api, LiveApp, Screens, new_page, sign_in


def _search(page: Any, seeded: dict) -> None:
    page.get_by_label("Flow", exact=True).select_option(label="support-bot")
    page.get_by_label("Status").select_option("error")
    page.get_by_label("Error text contains").fill("TIMEOUT")
    page.get_by_role("button", name="Search").click()


def test_search_filters_are_in_the_url_and_rows_link_to_runs(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    ids = seeded["ids"]
    timeouts = {ids[i] for i, msg in ERRORS.items() if "timeout" in msg}  # independent: what was seeded
    assert len(timeouts) == 2
    sign_in(page, api.key)
    page.get_by_role("link", name="Search", exact=True).click()
    _search(page, seeded)
    expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    shown = set(page.locator("#search-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)"))
    assert shown == timeouts
    assert "error=TIMEOUT" in page.url and "status=error" in page.url
    shot("search-timeouts")
    page.reload()  # the same results from the address alone
    expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    expect(page.get_by_label("Error text contains")).to_have_value("TIMEOUT")
    # tags (all of) across flows
    page.goto("/#/search?tags=regression,slow")
    expect(page.locator("#search-summary")).to_have_text("Showing 1 of 1 run")
    expect(page.locator(f'#search-table tr[data-run="{ids[5]}"]')).to_be_visible()
    # a filter the API refuses names the problem
    page.goto("/#/search?min_ms=900&max_ms=100")
    expect(page.locator("#search-results .error-panel")).to_contain_text("ge_ must not be greater than le_")
    shot("search-refused")
    page.goto("/#/search?meta=nokey")
    expect(page.locator("#search-results .error-panel")).to_contain_text("key=value")
    page.goto("/#/search?error=no-such-message-anywhere")
    expect(page.get_by_text("No runs match these filters")).to_be_visible()
    page.goto(f"/#/search?status=error&error=timeout&flow={seeded['flow_id']}")
    page.locator(f'#search-table tr[data-run="{ids[1]}"] a').first.click()
    expect(page.locator("#nodes")).to_be_visible()
    assert ids[1] in page.url


def test_search_on_a_phone(browser: Any, live: LiveApp, api: Api, seeded: dict, request: Any) -> None:
    page = new_page(browser, live, width=390, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto("/#/search")
        _search(page, seeded)
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot("search-phone")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
