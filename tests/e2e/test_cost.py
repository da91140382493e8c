"""Cost (#/cost): spend by flow, model, node and user; per successful run; burned by failed and aborted runs."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in


def money(usd: float) -> str:
    """format.js's money(): 2 significant digits under $0.10 (trailing zero kept: "$0.010"), else cents."""
    if usd == 0:
        return "$0"
    if abs(usd) >= 0.0995:
        return f"${usd:.2f}"
    digits = 1 - Decimal(f"{usd:.1e}").adjusted()
    return f"${usd:.{digits}f}"


def _runs_by_status(api: Api, flow_id: str) -> dict[str, list[float]]:
    """The seeded flow's run costs per status, read one run at a time: independent of the cost report."""
    page = api.ok(
        api.http.post(
            "/api/v1/executions/search", json={"filter": {"flow_id": {"any_": [flow_id]}}, "limit": 100}
        )
    )
    out: dict[str, list[float]] = {"success": [], "error": [], "aborted": []}
    for item in page["items"]:
        out[item["status"]].append(item["cost"] or 0.0)
    return out


def _check(page: Any, shot: Screens, api: Api, flow_id: str, size: str) -> None:
    costs = _runs_by_status(api, flow_id)
    assert len(costs["error"]) == 3 and len(costs["aborted"]) == 1
    total = sum(sum(v) for v in costs.values())
    row = page.locator(f'#cost-flow-table tr[data-group="{flow_id}"]')
    expect(row.locator("th")).to_have_text("support-bot")
    expect(row.locator('[data-col="runs"]')).to_have_text("12")
    expect(row.locator('[data-col="cost"]')).to_have_text(money(total))
    expect(row.locator('[data-col="cost_per_success"]')).to_have_text(money(total / len(costs["success"])))
    expect(row.locator('[data-col="error_cost"]')).to_have_text(f"{money(sum(costs['error']))}3 failed")
    expect(row.locator('[data-col="aborted_cost"]')).to_have_text(f"{money(sum(costs['aborted']))}1 aborted")
    expect(page.locator('#cost-model-table tr[data-group="gpt-4o-mini"]')).to_be_visible()
    expect(page.locator(f'#cost-node-table tr[data-group="model_1"][data-flow="{flow_id}"]')).to_be_visible()
    expect(page.locator("#cost-user-table tbody tr").first).to_be_visible()
    expect(page.locator('figure[data-chart="cost-by-flow"]')).to_have_attribute("data-points", "30")
    shot(f"cost-{size}")


@pytest.mark.usefixtures("seeded")
def test_cost_screen_matches_the_runs(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    sign_in(page, api.key)
    # the nav's link: the overview table's sortable "Cost" header is a link too, once it has loaded
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cost", exact=True).click()
    _check(page, shot, api, seeded["flow_id"], "desktop")
    page.get_by_role("link", name="7 days").click()
    expect(page.locator('figure[data-chart="cost-by-flow"]')).to_have_attribute("data-points", "7")
    page.reload()  # the range is in the URL
    expect(page.locator('figure[data-chart="cost-by-flow"]')).to_have_attribute("data-points", "7")


def test_cost_on_a_phone(browser: Any, live: LiveApp, api: Api, seeded: dict, request: Any) -> None:
    page = new_page(browser, live, width=390, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto("/#/cost")
        _check(page, shot, api, seeded["flow_id"], "phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_a_long_flow_name_wraps_and_leaves_the_numbers_in_view(page: Any, api: Api) -> None:
    """Row labels did not wrap: a long flow name pushed the cost columns out of the table's view."""
    name = "a flow with a rather long descriptive name " * 3
    flow_id = api.create_flow(name.strip())
    api.batch(
        [
            {
                "flow_id": flow_id,
                "status": "success",
                "execution_time": 5,
                "created_at": int(time.time()) - 7200,
            }
        ]
    )
    sign_in(page, api.key)
    page.goto("/#/cost")
    row = page.locator(f'#cost-flow-table tr[data-group="{flow_id}"]')
    expect(row.locator('[data-col="aborted_cost"]')).to_be_visible()
    label, last = row.locator("th").bounding_box(), row.locator('[data-col="aborted_cost"]').bounding_box()
    assert label is not None and last is not None
    assert label["height"] > 30  # wrapped onto more than one line
    assert last["x"] + last["width"] <= 1280  # the last cost column is on screen
