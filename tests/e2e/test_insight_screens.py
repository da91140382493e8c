"""Issue 14, items 4-7 and 9, in the browser at desktop and phone sizes: the run timeline in graph
order, charts with gaps (not zeros) from the first run, version changes marked on every chart,
versions compared over whole lives, a UTC/local time-zone choice, anomalies as a chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, sign_in

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
CHARTS = ("runs", "duration", "cost")


def open_page(browser: Any, live: LiveApp, size: str, zone: str = "UTC") -> Any:
    width, height = SIZES[size]
    context = browser.new_context(
        viewport={"width": width, "height": height}, timezone_id=zone, locale="en-GB", base_url=live.url
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.js_errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    return page


def no_sideways_scroll(page: Any, size: str) -> None:
    if size == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"][0]


@pytest.fixture(scope="module")
def graph_flow(api: Api) -> dict[str, Any]:
    """Nodes defined out of order, edges input -> model -> output and model -> tool; one run where
    output and tool never ran and the model failed."""
    nodes = [
        {"id": "output_1"},
        {"id": "tool_1", "data": {"name": "Search tool"}},
        {"id": "model_1"},
        {"id": "input_1"},
    ]
    edges = [
        {"source": "model_1", "target": "output_1"},
        {"source": "input_1", "target": "model_1"},
        {"source": "model_1", "target": "tool_1"},
    ]
    body = {"name": "graph-bot", "nodes": nodes, "edges": edges, "access_control": {}}
    flow_id = api.ok(api.http.post("/api/v1/flows/create", json=body))["id"]
    results = {
        "input_1": {"value": "hi", "duration_ms": 5},
        "model_1": {
            "modelId": "gpt-4o-mini",
            "content": "",
            "duration_ms": 1800,
            "usage": {"prompt_tokens": 120, "completion_tokens": 0},
        },
    }
    run = {
        "flow_id": flow_id,
        "status": "error",
        "inputs": {"prompt": "hi"},
        "outputs": results,
        "node_results": results,
        "errors": {"model_1": "rate limit exceeded for gpt-4o-mini"},
        "execution_time": 2000,
        "created_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
    }
    (run_id,) = api.batch([run])
    return {"flow_id": flow_id, "run_id": run_id}


@pytest.mark.parametrize("size", list(SIZES))
def test_run_timeline_in_graph_order(
    browser: Any, live: LiveApp, api: Api, graph_flow: dict, size: str, request: Any
) -> None:
    page = open_page(browser, live, size)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{graph_flow['flow_id']}/runs/{graph_flow['run_id']}")
        rows = page.locator("#timeline li.tl-row")
        expect(rows).to_have_count(4)
        # topological: input before model before its two successors (definition order between those)
        assert rows.evaluate_all("els => els.map(e => e.dataset.node)") == [
            "input_1",
            "model_1",
            "output_1",
            "tool_1",
        ]
        assert rows.evaluate_all("els => els.map(e => e.dataset.ran)") == ["true", "true", "false", "false"]
        expect(page.locator('#timeline li[data-node="model_1"]')).to_have_attribute("data-status", "error")
        expect(page.locator('#timeline li[data-node="model_1"]')).to_contain_text("1.80 s")
        expect(page.locator('#timeline li[data-node="model_1"]')).to_contain_text("120 in / 0 out")
        expect(page.locator('#timeline li[data-node="tool_1"]')).to_contain_text("never ran")
        expect(page.locator('#timeline li[data-node="tool_1"]')).to_contain_text("Search tool")  # its label
        expect(page.locator("#timeline")).to_contain_text("2 never ran")
        # the model's bar starts where the input's ends and is 1800/2000 of the track
        bars = page.locator("#timeline .tl-bar")
        expect(bars).to_have_count(2)
        widths = bars.evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width)"
        )
        assert widths[1] == pytest.approx(0.9, abs=0.02)
        no_sideways_scroll(page, size)
        shot("timeline")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def versioned(api: Api) -> dict[str, Any]:
    """v1: 40 runs 20 to 11 days ago (2 % failing), none 15 days ago; v2: 40 runs in the last 8
    days failing often, one of them 40x slower than the rest (an anomaly)."""
    flow_id = api.create_flow("versioned-bot")
    now = datetime.now(UTC)

    def runs(version: int, first_day: int, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            at = now - timedelta(days=first_day) + timedelta(hours=5 * i + 1)
            if version == 1 and (now - at).days == 15:
                continue  # an empty day: a gap
            failing = (i % 10 == 0) if version == 1 else (i % 3 == 0)
            ms = 60_000 if (version == 2 and i == 30) else 1000 + 10 * (i % 7)
            out.append(
                {
                    "flow_id": flow_id,
                    "status": "error" if failing else "success",
                    "inputs": {},
                    "outputs": {},
                    "node_results": {},
                    "errors": {"model_1": "boom"} if failing else None,
                    "execution_time": ms,
                    "created_at": at.isoformat(),
                }
            )
        return out

    api.batch(runs(1, 20, 45))
    api.ok(api.http.post(f"/api/v1/flows/{flow_id}", json={"nodes": [{"id": "input_1"}, {"id": "model_2"}]}))
    api.batch(runs(2, 8, 36))
    return {"flow_id": flow_id}


@pytest.mark.parametrize("size", list(SIZES))
def test_analytics_gaps_markers_versions_anomalies(
    browser: Any, live: LiveApp, api: Api, versioned: dict, size: str, request: Any
) -> None:
    flow_id = versioned["flow_id"]
    page = open_page(browser, live, size)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}/analytics?range=30d&bucket=day&tz=utc")
        charts = page.locator("#charts")
        for key in CHARTS:
            expect(page.locator(f'figure[data-chart="{key}"]')).to_have_attribute("data-drawn", "true")
        start, end = charts.get_attribute("data-start"), charts.get_attribute("data-end")
        trend = api.get(
            f"/api/v1/flows/{flow_id}/trend", start=start, end=end, bucket="day", measures="runs,failure_rate"
        )
        first = next(i for i, r in enumerate(trend["rows"]) if r["runs"])
        assert first > 0  # weeks before the first run ...
        drawn = len(trend["rows"]) - first  # ... are not drawn
        empty_after = sum(1 for r in trend["rows"][first:] if not r["runs"])
        assert empty_after >= 1 and all(r["failure_rate"] is None for r in trend["rows"] if not r["runs"])
        for key in CHARTS:
            figure = page.locator(f'figure[data-chart="{key}"]')
            expect(figure).to_have_attribute("data-points", str(drawn))
            expect(figure).to_have_attribute("data-markers", "1")  # the version change
        expect(page.locator('figure[data-chart="runs"]')).to_have_attribute("data-gaps", str(empty_after))
        expect(page.locator("#versions-table tbody tr")).to_have_count(2)
        expect(page.locator("#versions-table tbody tr").nth(1)).to_have_class("row-error")  # a regression
        # anomalies: a chart with the flagged run marked, and the list under it
        anomalies = page.locator('figure[data-chart="anomalies"]')
        expect(anomalies).to_have_attribute("data-drawn", "true")
        flagged = api.get(f"/api/v1/flows/{flow_id}/anomalies", start=start, end=end, limit=100)
        assert flagged
        expect(anomalies).to_have_attribute("data-flagged", str(len(flagged)))
        no_sideways_scroll(page, size)
        shot("analytics-30d")

        # 7 days: v1 ran before the range, yet v2 is compared with it, not called "first version"
        page.goto(f"/#/flows/{flow_id}/analytics?range=7d&bucket=day&tz=utc")
        rows = page.locator("#versions-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("yes (significant)")
        expect(page.locator("#versions")).not_to_contain_text("first version")
        no_sideways_scroll(page, size)
        shot("analytics-7d")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_local_time_zone_choice(
    browser: Any, live: LiveApp, api: Api, versioned: dict, size: str, request: Any
) -> None:
    flow_id = versioned["flow_id"]
    berlin = ZoneInfo("Europe/Berlin")
    page = open_page(browser, live, size, zone="Europe/Berlin")
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}/analytics?range=30d&bucket=day")
        expect(page.locator("#charts")).to_have_attribute("data-tz", "UTC")
        page.get_by_label("Times in").select_option("local")
        page.get_by_role("button", name="Show").click()
        charts = page.locator("#charts")
        expect(charts).to_have_attribute("data-tz", "Europe/Berlin")
        expect(page.locator("#range-caption")).to_contain_text("Europe/Berlin")
        expect(page.locator('figure[data-chart="runs"]')).to_have_attribute("data-drawn", "true")
        for name in ("data-start", "data-end", "data-first-bucket"):
            local = datetime.fromtimestamp(int(charts.get_attribute(name)), berlin)
            assert (local.hour, local.minute) == (0, 0), (name, local)  # Berlin midnights
        # the choice is kept: another visit without ?tz stays local
        page.goto(f"/#/flows/{flow_id}/analytics?range=7d&bucket=day")
        expect(page.locator("#charts")).to_have_attribute("data-tz", "Europe/Berlin")
        no_sideways_scroll(page, size)
        shot("analytics-local")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
