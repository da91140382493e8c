"""Issue 14's fixes: retention labels and per-status dry-run counts, the not-found page, Jobs for admins only, favicon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, jwt, new_page, sign_in, standard_runs


def test_retention_says_what_a_pass_deletes_per_status(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("retention-labels")
    now = datetime.now(UTC)
    runs = standard_runs(flow_id, now)
    api.batch(runs)
    # independent: with only max_age_days = 2, every run older than 48 h goes, whatever its status
    cutoff = now - timedelta(days=2)
    expected: dict[str, int] = {"success": 0, "error": 0, "aborted": 0}
    for r in runs:
        if datetime.fromisoformat(r["created_at"]) < cutoff:
            expected[r["status"]] += 1
    assert expected["error"] and expected["aborted"]  # the case the old label hid
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/retention")
    field = page.get_by_label("Delete runs older than (days)", exact=False)
    expect(field).to_be_visible()
    expect(page.locator('label[for="p-max_age_days"]')).to_contain_text(
        "failed/aborted runs too when the next field is empty"
    )
    field.fill("2")
    page.get_by_role("button", name="Dry run these values").click()
    for status, n in expected.items():
        expect(page.locator(f'#dry-run-by-status li[data-status="{status}"]')).to_contain_text(f"{n} ")
    shot("retention-by-status")
    page.get_by_label("Delete failed (error) and aborted runs older than", exact=False).fill("30")
    page.get_by_role("button", name="Dry run these values").click()
    expect(page.locator('#dry-run-by-status li[data-status="error"]')).to_contain_text("0 failed")
    expect(page.locator('#dry-run-by-status li[data-status="success"]')).to_contain_text(
        f"{expected['success']} successful"
    )


def test_unknown_route_offers_a_way_back_and_jobs_is_for_admins(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    for size, width in (("desktop", 1280), ("phone", 390)):
        page = new_page(browser, live, width=width, height=844)
        shot = Screens(page, f"{request.node.name}-{size}")
        try:
            sign_in(page, jwt("e2e-fixes-user"))
            expect(page.get_by_role("link", name="Jobs")).to_be_hidden()
            expect(page.get_by_role("link", name="Search", exact=True)).to_be_visible()
            page.goto("/#/no/such/page")
            expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
            shot("not-found")
            page.get_by_role("link", name="Back to the overview").click()
            expect(page.locator("#flows-table, [data-state=empty]").first).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert not page.js_errors, page.js_errors
        finally:
            page.context.close()
    page = new_page(browser, live)
    try:
        sign_in(page, api.key)
        expect(page.get_by_role("link", name="Jobs")).to_be_visible()
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        r = httpx.get(live.url + icon)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    finally:
        page.context.close()
