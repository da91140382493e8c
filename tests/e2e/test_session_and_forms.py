"""A new user's dashboard report (fourteenth session): who is signed in now, a reader's run page,
an address that is not one, a flow renamed meanwhile, and a threshold with a thousands separator."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, jwt, new_page, sign_in


def test_the_next_user_in_the_same_tab_gets_their_own_buttons(browser: Any, live: LiveApp, api: Api) -> None:
    """An admin signed out and a reader signed in within a minute: the admin's writable flows
    were kept, and the reader was offered 50 Delete buttons and retention Save, all 403."""
    flow_id = api.create_flow("shared to read", access_control={"read": {"user_ids": ["e2e-next"]}})
    [run_id] = api.batch(
        [{"flow_id": flow_id, "status": "success", "execution_time": 5, "user_id": "e2e-next"}]
    )
    page = new_page(browser, live)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator('[data-action="delete"]')).to_have_count(1)
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, jwt("e2e-next"))
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator(f'#runs tr[data-id="{run_id}"]')).to_be_visible()
        expect(page.locator('[data-action="delete"]')).to_have_count(0)
        expect(page.locator("#delete-all")).to_have_count(0)
        page.goto(f"/#/flows/{flow_id}/runs/{run_id}")  # the run page offered "Delete run" to anyone
        expect(page.locator("#run-summary")).to_be_visible()
        expect(page.locator("#delete-run")).to_have_count(0)
        page.goto(f"/#/flows/{flow_id}/retention")
        expect(page.locator("#dry-run-stored")).to_be_disabled()
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_an_address_that_is_not_one_says_so_and_a_renamed_flow_shows_its_name(
    page: Any, live: LiveApp, api: Api
) -> None:
    flow_id = api.create_flow("before the rename")
    sign_in(page, api.key)
    page.goto("/#/flows/%ZZ")  # hung on "Loading…" with an uncaught URIError
    expect(page.locator('[data-state="not-found"]')).to_be_visible()
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator("h1")).to_contain_text("before the rename")
    r = httpx.post(
        f"{live.url}/api/v1/flows/{flow_id}",
        json={"name": "after the rename"},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert r.status_code == 200, r.text
    page.wait_for_timeout(5_500)  # past the few seconds a flow is shared between a screen's parts
    page.goto("/#/")
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator("h1")).to_contain_text("after the rename")  # kept the old name until a reload


def test_a_threshold_with_a_thousands_separator_is_refused_not_read_as_one(page: Any, api: Api) -> None:
    flow_id = api.create_flow("thousands")
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/alerts")
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name", exact=True).fill("many runs")
    page.get_by_label("Metric").select_option("run_count")
    page.get_by_label("Alert threshold").fill("1,000")  # stored as 1 ("Runs > 1")
    page.get_by_label("Window").fill("1d")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#r-threshold-error")).to_contain_text("without a thousands separator")
    assert api.get("/api/v1/alerts/rules", flow_id=flow_id) == []
    page.get_by_label("Alert threshold").fill("1000")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rules-table tbody tr")).to_have_count(1)
    assert api.get("/api/v1/alerts/rules", flow_id=flow_id)[0]["threshold"] == 1000


def test_a_day_of_unpriced_runs_is_a_gap_in_the_spend_chart_not_zero(
    browser: Any, live: LiveApp, api: Api
) -> None:
    """The chart drew an unpriced flow as a flat $0 line ("Mystery $0"), where the API says its
    cost is unknown (null): an unpriced model must never show as free."""
    user = "e2e-unpriced"
    flow_id = api.create_flow("mystery", access_control={"read": {"user_ids": [user]}})
    node = {
        "model_1": {"modelId": "no-price-model-xyz", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
    }
    api.batch(
        [
            {
                "flow_id": flow_id,
                "status": "success",
                "execution_time": 5,
                "user_id": user,
                "node_results": node,
            }
            for _ in range(3)
        ]
    )
    page = new_page(browser, live)
    try:
        sign_in(page, jwt(user))
        page.goto("/#/cost")
        chart = page.locator('figure[data-chart="cost-by-flow"]')
        expect(chart).to_have_attribute("data-drawn", "true")
        expect(chart).to_have_attribute("data-gaps", "1")  # today: runs, cost unknown
    finally:
        page.context.close()


def test_the_history_cards_cost_and_p95_cover_every_run_the_total_counts(page: Any, api: Api) -> None:
    """The cost and p95 cards read 2000 to a minute ahead, the total every run: a run backfilled
    from 1995 or sent 6 hours ahead was counted but not costed ($0.25 shown for three $0.25 runs)."""
    import time

    from tests.e2e.test_cost import money

    flow_id = api.create_flow("edge times")
    node = {"model_1": {"modelId": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}}
    now = int(time.time())
    ids = api.batch(
        [
            {
                "flow_id": flow_id,
                "status": "success",
                "execution_time": 5,
                "created_at": at,
                "node_results": node,
            }
            for at in (now - 60, now + 6 * 3600, 788_918_400)  # now, 6 h ahead, 1995
        ]
    )
    costs = [api.get(f"/api/v1/flows/{flow_id}/executions/{i}")["cost"] for i in ids]
    assert costs[0] and costs[1] and costs[2] is None  # no price in 1995: unknown, left out of the sum
    costs = costs[:2]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator('[data-stat="total"] .value')).to_have_text("3")
    expect(page.locator('[data-stat="cost"] .value')).to_have_text(money(sum(costs)))


def test_a_reader_is_not_told_a_flow_has_no_rules(browser: Any, live: LiveApp, api: Api) -> None:
    """The API shows a flow's rules to its owner, admins and writers only: a reader's Alerts tab
    said "Rules (0) — No alert rules. Add a rule ..." of a flow with rules."""
    flow_id = api.create_flow("watched", access_control={"read": {"user_ids": ["e2e-looker"]}})
    rule = {"name": "errors", "metric": "error_count", "flow_id": flow_id, "window": "1h", "threshold": 1}
    api.ok(api.http.post("/api/v1/alerts/rules", json=rule))
    page = new_page(browser, live)
    try:
        sign_in(page, jwt("e2e-looker"))
        page.goto(f"/#/flows/{flow_id}/alerts")
        expect(page.get_by_text("No alert rules shown")).to_be_visible()
        expect(page.get_by_text("Add a rule to be told")).to_have_count(0)
    finally:
        page.context.close()


def test_the_sql_console_writes_numbers_in_the_browsers_locale(browser: Any, live: LiveApp, api: Api) -> None:
    """Hard-coded en-US ("1,234,567", "945.2 ms") beside German dates in a de-DE browser."""
    api.ok(api.http.post("/api/v1/exports/run"))
    page = new_page(browser, live, locale="de-DE")
    try:
        sign_in(page, api.key)
        page.goto("/#/sql")
        page.get_by_label("Query").fill("SELECT 1234567::BIGINT AS n, 3.14159265::DOUBLE AS x")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#sql-summary")).to_contain_text("1 row")
        assert page.locator("#sql-result tbody td").all_inner_texts() == ["1.234.567", "3,142"]
        expect(page.locator("#sql-summary")).to_contain_text(",")  # "in 12,3 ms"
    finally:
        page.context.close()
