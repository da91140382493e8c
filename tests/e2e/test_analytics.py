"""Analytics: each chart drawn with the expected number of points; the tables beside them."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, sign_in

CHARTS = ("runs", "duration", "cost")


def test_charts_have_one_point_per_bucket_and_follow_the_pickers(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    flow_id = seeded["flow_id"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    charts = page.locator("#charts")
    for key in CHARTS:
        expect(page.locator(f'figure[data-chart="{key}"]')).to_have_attribute("data-drawn", "true")
        expect(page.locator(f'figure[data-chart="{key}"] canvas')).to_have_count(1)
    # 7 days by day, aligned to UTC midnights: exactly 7 buckets, the same the API answers
    start, end = charts.get_attribute("data-start"), charts.get_attribute("data-end")
    assert int(end) - int(start) == 7 * 86400 and int(end) % 86400 == 0
    trend = api.get(f"/api/v1/flows/{flow_id}/trend", start=start, end=end, bucket="day", measures="runs")
    assert len(trend["rows"]) == 7
    # drawn from the first bucket with runs (the seeded runs cover the last 3.5 days)
    drawn = 7 - next(i for i, r in enumerate(trend["rows"]) if r["runs"])
    assert 4 <= drawn < 7
    for key in CHARTS:
        expect(page.locator(f'figure[data-chart="{key}"]')).to_have_attribute("data-points", str(drawn))
    expect(charts).to_have_attribute("data-total-runs", "12")
    expect(page.locator("#nodes-table tbody tr")).to_have_count(3)
    expect(page.locator('#nodes-table tr[data-node="model_1"]')).to_contain_text("gpt-4o-mini")
    expect(page.locator("#failures-table tbody tr")).to_have_count(2)  # timeout and rate limit
    expect(page.locator("#failures-table")).to_contain_text("upstream timeout")
    expect(page.locator("#versions-table tbody tr")).to_have_count(1)
    expect(page.locator("#reliability .card").first).to_contain_text("12")
    shot("analytics-7d")

    page.get_by_label("Range", exact=True).select_option("24h")
    page.get_by_label("Bucket", exact=True).select_option("hour")
    page.get_by_role("button", name="Show").click()
    expect(charts).to_have_attribute("data-bucket", "hour")  # the new range is on the page
    start, end = charts.get_attribute("data-start"), charts.get_attribute("data-end")
    trend = api.get(f"/api/v1/flows/{flow_id}/trend", start=start, end=end, bucket="hour", measures="runs")
    drawn = 24 - next(i for i, r in enumerate(trend["rows"]) if r["runs"])  # from 22 hours ago
    for key in CHARTS:
        expect(page.locator(f'figure[data-chart="{key}"]')).to_have_attribute("data-points", str(drawn))
    expect(charts).to_have_attribute("data-total-runs", "4")  # 1, 8, 15 and 22 hours ago
    shot("analytics-24h")

    # 90 days by hour would be 2,160 buckets, which the API refuses: never offered, the bucket
    # moves to day (test_dashboard_fixes_18 checks every pair and the links asking for it)
    page.get_by_label("Range", exact=True).select_option("90d")
    expect(page.get_by_label("Bucket", exact=True)).to_have_value("day")
    expect(page.locator('#bucket option[value="hour"]')).to_be_disabled()
    page.get_by_role("button", name="Show").click()
    expect(charts).to_have_attribute("data-bucket", "day")
    expect(page.locator("#charts .error-panel")).to_have_count(0)
    shot("analytics-90d")


def test_nodes_are_named_by_their_label(page: Any, api: Api) -> None:
    """The per-node and signature tables showed editor ids (`model_1739905519876_k3j9x2abq`)
    where the run page shows the node's label."""
    body = {
        "name": "labelled",
        "nodes": [{"id": "llm_9", "data": {"label": "Answer model"}}],
        "edges": [],
        "access_control": {},
    }
    flow_id = str(api.ok(api.http.post("/api/v1/flows/create", json=body))["id"])
    api.batch(
        [
            {
                "flow_id": flow_id,
                "status": "error",
                "execution_time": 9,
                "node_results": {"llm_9": {"modelId": "gpt-4o-mini", "content": ""}},
                "errors": {"llm_9": "upstream timeout after 30s"},
            }
        ]
    )
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    expect(page.locator('#nodes-table tr[data-node="llm_9"] .node-label')).to_have_text("Answer model")
    expect(page.locator('#failures-table tr[data-node="llm_9"] .node-label')).to_have_text("Answer model")
    expect(page.locator('#nodes-table tr[data-node="llm_9"] .node-label')).to_have_attribute("title", "llm_9")
