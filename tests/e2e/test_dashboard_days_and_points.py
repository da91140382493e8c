"""The third dashboard tester's findings: Cost's UTC days drawn in the browser's zone, and a
change between two failure rates written as a relative "%"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in


def _priced(flow_id: str, when: datetime, *, version: str = "v1", failed: bool = False) -> dict[str, Any]:
    nodes = {
        "model_1": {
            "modelId": "gpt-4o-mini",
            "content": "ok",
            "usage": {"prompt_tokens": 900, "completion_tokens": 300},
        }
    }
    return {
        "flow_id": flow_id,
        "flow_version": version,
        "status": "error" if failed else "success",
        "inputs": {"prompt": "hi"},
        "outputs": nodes,
        "node_results": nodes,
        "errors": {"model_1": "upstream refused"} if failed else None,
        "execution_time": 1200,
        "created_at": when.isoformat(),
    }


def _medium_date(d: datetime) -> str:
    """en-GB's `dateStyle: "medium"`: "7 Dec 2026"."""
    return f"{d.day} {d:%b} {d.year}"


def test_cost_days_read_as_utc_days_in_a_los_angeles_browser(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    """Cost asks for UTC days; the chart drew and named them in the browser's zone: today's UTC
    spend read "6 Dec 2026, 16:00" in Los Angeles, and each day's label sat between two points."""
    flow_id = api.create_flow("cost-utc-days")
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    api.batch([_priced(flow_id, today - timedelta(days=d) + timedelta(minutes=30)) for d in range(7)])
    page = new_page(browser, live, timezone_id="America/Los_Angeles")
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.evaluate("localStorage.setItem('flowhistory.tz', 'local')")  # the browser's own zone, chosen
        page.goto("/#/cost?range=7d")
        page.reload()
        figure = page.locator('figure[data-chart="cost-by-flow"]')
        expect(figure).to_have_attribute("data-drawn", "true")
        expect(figure.locator("figcaption")).to_contain_text("UTC days")
        over = figure.locator(".u-over").bounding_box()
        assert over is not None
        page.mouse.move(over["x"] + over["width"] * 0.999, over["y"] + over["height"] / 2)
        legend = figure.locator(".u-legend")
        expect(legend).to_contain_text(_medium_date(today))
        expect(legend).not_to_contain_text(":00")  # a day, not a time of day
        shot("cost-los-angeles")
        assert not page.js_errors  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_a_versions_failure_change_is_in_points(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("versions-in-points")
    start = datetime.now(UTC) - timedelta(days=3)
    runs = [_priced(flow_id, start + timedelta(minutes=i), failed=i < 5) for i in range(100)]
    runs += [
        _priced(flow_id, start + timedelta(days=1, minutes=i), version="v2", failed=i < 30)
        for i in range(100)
    ]
    api.batch(runs)
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    row = page.locator('#versions-table tr[data-version="v2"]')
    expect(row.locator("td").nth(3)).to_have_text("30.0 %")
    expect(row.locator("td").nth(4)).to_have_text(
        "+25.0 pts"
    )  # as the overview says it ("%" read as relative)
    shot("versions")


def test_signature_links_match_exactly(page: Any, shot: Any, api: Api) -> None:
    """The links' fields were trimmed: a signature cut at 500 characters just after a space, or a
    node id with spaces around it, found 0 runs where the count said 3."""
    flow_id = api.create_flow("signature-exact")
    now = datetime.now(UTC)
    cut_after_a_space = "x" * 499 + " " + "y" * 100  # its signature is 499 x and a space
    runs = []
    for i in range(3):
        for node, message in ((" padded ", "tool refused"), ("llm_1", cut_after_a_space)):
            nodes = {node: {"content": "no"}}
            runs.append(
                {
                    "flow_id": flow_id,
                    "status": "error",
                    "inputs": {},
                    "outputs": nodes,
                    "node_results": nodes,
                    "errors": {node: message},
                    "execution_time": 10,
                    "created_at": (now - timedelta(hours=1 + i)).isoformat(),
                }
            )
    api.batch(runs)
    sign_in(page, api.key)
    for node in (" padded ", "llm_1"):
        page.goto(f"/#/flows/{flow_id}/analytics")
        row = page.locator(f'#failures-table tbody tr[data-node="{node}"]')
        expect(row.locator("td").nth(2)).to_have_text("3")
        row.get_by_role("link").click()
        expect(page.locator("#search-summary")).to_have_text("Showing 3 of 3 runs")
    shot("exact")
