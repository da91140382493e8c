"""Overview (#/): every readable flow with period numbers, changes, sparklines and what needs attention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in


def _run(flow_id: str, status: str, hours: float, ms: int = 1000) -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "status": status,
        "inputs": {"prompt": "hi"},
        "outputs": {},
        "node_results": {
            "model_1": {"modelId": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
        },
        "errors": {"model_1": "upstream timeout after 30s"} if status == "error" else None,
        "execution_time": ms,
        "created_at": (datetime.now(UTC) - timedelta(hours=hours)).isoformat(),
    }


@pytest.fixture(scope="module")
def overview_flows(api: Api) -> dict[str, Any]:
    """A calm flow, and one whose new version fails half its runs, with a firing alert on it."""
    calm = api.create_flow("overview-calm")
    api.batch([_run(calm, "success", 2 + i) for i in range(10)])
    bad = api.create_flow("overview-regressed")
    old = [_run(bad, "success", 25 + i * 0.5) for i in range(40)]  # 25-44.5 hours ago
    api.batch(old)
    nodes = [{"id": "input_1"}, {"id": "model_1"}, {"id": "model_2"}, {"id": "output_1"}]
    api.ok(api.http.post(f"/api/v1/flows/{bad}", json={"nodes": nodes}))  # a new version
    new = [_run(bad, "error" if i % 2 else "success", 1 + i * 0.5) for i in range(40)]
    api.batch(new)
    rule = api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "name": "overview failure rate",
                "metric": "failure_rate",
                "flow_id": bad,
                "window": "1d",
                "threshold": 0.2,
            },
        )
    )
    api.ok(api.http.post(f"/api/v1/alerts/rules/{rule['id']}/evaluate"))
    assert api.get(f"/api/v1/alerts/rules/{rule['id']}")["states"][0]["state"] == "FIRING"
    return {"calm": calm, "bad": bad, "runs": {calm: 10, bad: 80}, "errors": {calm: 0, bad: 20}}


def _buckets(page: Any, step: int) -> int:
    """Calendar buckets (UTC) the period touches: a rolling 7 days spans 8 days, unless it starts at midnight."""
    table = page.locator("#flows-table")
    start, end = int(table.get_attribute("data-start")), int(table.get_attribute("data-end"))
    return (end - 1) // step - start // step + 1


def _check_overview(page: Any, shot: Screens, flows: dict[str, Any], size: str) -> None:
    calm, bad = flows["calm"], flows["bad"]
    expect(page.locator("#flows-table")).to_be_visible()
    calm_row = page.locator(f'#flows-table tr[data-flow="{calm}"]')
    bad_row = page.locator(f'#flows-table tr[data-flow="{bad}"]')
    # independent numbers: what was seeded
    expect(calm_row.locator('[data-col="runs"]')).to_contain_text("10")
    expect(calm_row.locator('[data-col="failure_rate"]')).to_contain_text("0.0 %")
    expect(bad_row.locator('[data-col="runs"]')).to_contain_text("80")
    expect(bad_row.locator('[data-col="failure_rate"]')).to_contain_text(f"{20 / 80 * 100:.1f} %")
    # the problem flow stands out with words, not colour alone
    expect(bad_row).to_have_attribute("data-problem", "alert regression")  # nothing ran the 7 days before
    expect(bad_row.locator(".attention")).to_contain_text("Alert firing")
    expect(bad_row.locator(".attention")).to_contain_text("Version regression")
    expect(calm_row.locator(".attention")).to_have_text("● OK")
    expect(calm_row.locator("svg.sparkline")).to_have_attribute("data-points", str(_buckets(page, 86400)))
    # problems sort first by default
    first = page.locator("#flows-table tbody tr").first
    expect(first).to_have_attribute("data-flow", bad)
    expect(page.locator("#alerts-table")).to_contain_text("overview failure rate")
    expect(page.locator("#alerts-table thead")).to_contain_text("Since (UTC)")  # the zone the time is in
    expect(page.locator("#regressions-table")).to_contain_text("overview-regressed")
    expect(page.locator("#signatures-table")).to_contain_text("upstream timeout")
    shot(f"overview-{size}")


def test_overview_shows_each_flow_and_marks_problems(
    page: Any, shot: Any, api: Api, overview_flows: dict
) -> None:
    sign_in(page, api.key)
    page.goto("/#/")
    _check_overview(page, shot, overview_flows, "desktop")
    # sort by runs ascending: the calm flow (10) comes before the regressed one (80); kept in the URL
    page.locator('a[data-sort="runs"]').click()
    page.locator('a[data-sort="runs"]').click()
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Runs")
    order = page.locator("#flows-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.flow)")
    assert order.index(overview_flows["calm"]) < order.index(overview_flows["bad"])
    runs = [
        int(t.split()[0].replace(",", ""))
        for t in page.locator('#flows-table [data-col="runs"]').all_inner_texts()
    ]
    assert runs == sorted(runs)
    page.reload()
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Runs")
    # 24 hours: the regressed flow's 40 new runs, by hour
    page.get_by_role("link", name="24 hours").click()
    bad_row = page.locator(f'#flows-table tr[data-flow="{overview_flows["bad"]}"]')
    expect(bad_row.locator('[data-col="runs"]')).to_contain_text("40")
    expect(page.locator("#flows-table")).to_have_attribute("data-period", "24h")
    expect(bad_row.locator("svg.sparkline")).to_have_attribute("data-points", str(_buckets(page, 3600)))
    # the day before: 40 runs, none failed; this day half failed; only the new version ran, and
    # it is still compared with its predecessor over their whole lives (issue 14, item 5)
    expect(bad_row).to_have_attribute("data-problem", "alert regression failures-up")
    expect(bad_row.locator(".attention")).to_contain_text("Failures up")
    expect(bad_row.locator('[data-col="failure_rate"]')).to_contain_text("50.0 pts")
    shot("overview-24h")
    # the old flows list address shows the same screen
    page.goto("/#/flows")
    expect(page.locator("#flows-table")).to_be_visible()


def test_overview_on_a_phone(
    browser: Any, live: LiveApp, api: Api, overview_flows: dict, request: Any
) -> None:
    page = new_page(browser, live, width=390, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto("/#/")
        _check_overview(page, shot, overview_flows, "phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # the key numbers are on screen without scrolling the table (the sparkline gave way)
        bad = page.locator(f'#flows-table tr[data-flow="{overview_flows["bad"]}"]')
        for col in ("failure_rate", "p95", "cost"):
            box = bad.locator(f'[data-col="{col}"]').bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390, (col, box)
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
