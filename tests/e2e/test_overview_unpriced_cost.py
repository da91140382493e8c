"""Overview (#/): a flow's cost that leaves out runs of a model without a price is a lower bound.

The overview showed a plain "$0.36" for a flow with runs of an unpriced model, where the Cost
screen showed "≥ $0.79" and counted them: an unpriced model never shows as free. The overview
now asks the cost report by flow for its own period and marks such a cost "≥", as the Cost
screen does; without the report (it failed) the table still stands, unmarked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, jwt, sign_in
from tests.e2e.test_cost import money

PRICED = "gpt-4o-mini"
UNPRICED = "no-price-model-overview"
READER = "e2e-overview-unpriced-reader"
TITLE = "model node whose cost is unknown (no price, or no token counts)"


def _node(model: str) -> dict[str, Any]:
    return {"modelId": model, "usage": {"prompt_tokens": 400_000, "completion_tokens": 200_000}}


def _run(flow_id: str, hours: float, *models: str) -> dict[str, Any]:
    nodes = {f"model_{i + 1}": _node(m) for i, m in enumerate(models)}
    return {
        "flow_id": flow_id,
        "status": "success",
        "execution_time": 500,
        "node_results": nodes,
        "user_id": READER,
        "created_at": (datetime.now(UTC) - timedelta(hours=hours)).isoformat(),
    }


@pytest.fixture(scope="module")
def flows(api: Api) -> dict[str, str]:
    """In the last 24 hours only (nothing the day before: no change shown beside the cost):
    mixed: priced runs, runs of an unpriced model alone, one run of both (its cost known, low);
    whole: priced runs and runs of an unpriced model alone; priced: priced runs only;
    unknown: runs of an unpriced model only."""
    read = {"read": {"user_ids": [READER]}}
    ids = {
        "mixed": api.create_flow("overview-unpriced-mixed"),
        "whole": api.create_flow("overview-unpriced-whole", access_control=read),
        "priced": api.create_flow("overview-unpriced-priced"),
        "unknown": api.create_flow("overview-unpriced-unknown"),
    }
    runs = [_run(ids["mixed"], 1 + i, PRICED) for i in range(3)]
    runs += [_run(ids["mixed"], 2 + i, UNPRICED) for i in range(2)]
    runs += [_run(ids["mixed"], 3, PRICED, UNPRICED)]
    runs += [_run(ids["whole"], 1 + i, PRICED) for i in range(2)]
    runs += [_run(ids["whole"], 4, UNPRICED)]
    runs += [_run(ids["priced"], 1 + i, PRICED) for i in range(4)]
    runs += [_run(ids["unknown"], 2 + i, UNPRICED) for i in range(2)]
    api.batch(runs)
    return ids


def _known_cost(api: Api, flow_id: str) -> float:
    """The flow's known cost, summed run by run: independent of the cost report and the metrics."""
    found = api.ok(
        api.http.post(
            "/api/v1/executions/search", json={"filter": {"flow_id": {"any_": [flow_id]}}, "limit": 100}
        )
    )
    return sum(item["cost"] or 0.0 for item in found["items"])


def _overview_cost(page: Any, flow_id: str) -> Any:
    return page.locator(f'#flows-table tr[data-flow="{flow_id}"] [data-col="cost"]')


def _cost_screen(page: Any, flow_id: str) -> Any:
    return page.locator(f'#cost-flow-table tr[data-group="{flow_id}"] [data-col="cost"]')


def test_a_cost_that_leaves_out_unpriced_runs_reads_at_least_as_on_the_cost_screen(
    page: Any, api: Api, flows: dict[str, str]
) -> None:
    sign_in(page, api.key)
    page.goto("/#/cost")
    expect(_cost_screen(page, flows["mixed"])).to_contain_text("$")
    screen = {name: _cost_screen(page, flow_id).inner_text() for name, flow_id in flows.items()}

    page.goto("/#/?period=24h")
    expect(page.locator("#flows-table")).to_have_attribute("data-period", "24h")
    mixed, whole = _overview_cost(page, flows["mixed"]), _overview_cost(page, flows["whole"])
    # the lower bound: the runs' known costs, the number the Cost screen shows
    expect(mixed).to_have_text(f"≥ {money(_known_cost(api, flows['mixed']))}")
    expect(mixed).to_have_text(screen["mixed"])  # "≥ $…" there too (a run of both models)
    expect(mixed.locator("[title]")).to_have_attribute(
        "title", f"At least: 3 runs with at least one {TITLE} are not counted"
    )
    expect(whole).to_have_text(f"≥ {money(_known_cost(api, flows['whole']))}")
    assert screen["whole"] == f"≥ {money(_known_cost(api, flows['whole']))}"  # both screens mark it
    expect(whole.locator("[title]")).to_have_attribute(
        "title", f"At least: 1 run with at least one {TITLE} is not counted"
    )
    # fully priced: the plain cost, unmarked; no known cost at all: unknown, never $0
    priced = _overview_cost(page, flows["priced"])
    expect(priced).to_have_text(money(_known_cost(api, flows["priced"])))
    expect(priced).to_have_text(screen["priced"])
    expect(priced.locator("[title]")).to_have_count(0)
    expect(_overview_cost(page, flows["unknown"])).to_have_text("—")
    assert screen["unknown"] == "—"


def test_a_reader_sees_the_mark_on_their_own_flow(page: Any, api: Api, flows: dict[str, str]) -> None:
    sign_in(page, jwt(READER))
    page.goto("/#/?period=24h")
    expect(_overview_cost(page, flows["whole"])).to_have_text(f"≥ {money(_known_cost(api, flows['whole']))}")
    for other in ("mixed", "priced", "unknown"):  # not theirs (other tests' flows may be: a shared server)
        expect(page.locator(f'#flows-table tr[data-flow="{flows[other]}"]')).to_have_count(0)


def test_without_the_cost_report_the_overview_stands_unmarked(
    page: Any, api: Api, flows: dict[str, str]
) -> None:
    page.route(
        "**/api/v1/cost?**",
        lambda route: route.fulfill(status=500, json={"detail": "cost report unavailable"}),
    )
    sign_in(page, api.key)
    page.goto("/#/?period=24h")
    expect(_overview_cost(page, flows["mixed"])).to_have_text(money(_known_cost(api, flows["mixed"])))
    expect(page.locator('#flows-table [data-col="cost"]', has_text="≥")).to_have_count(0)
    priced = page.locator(f'#flows-table tr[data-flow="{flows["priced"]}"]')
    expect(priced.locator('[data-col="cost"]')).to_have_text(money(_known_cost(api, flows["priced"])))
