"""A screen older than the store: a run deleted elsewhere (another tab, retention) and then
deleted again from a list that still shows it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, sign_in, standard_runs
from tests.e2e.test_history import open_history, rows


def test_deleting_a_run_gone_already_reads_the_list_again(page: Any, api: Api) -> None:
    """The list kept the row, "Showing 12 of 12" and the old cards under a "404: Execution not
    found" panel, with nothing offering to read it again."""
    flow_id = api.create_flow("deleted in another tab")
    ids = api.batch(standard_runs(flow_id))
    open_history(page, api, flow_id)
    expect(page.locator('[data-stat="total"] .value')).to_have_text("12")
    api.ok(api.http.delete(f"/api/v1/flows/{flow_id}/executions/{ids[0]}"))  # the other tab
    rows(page).first.get_by_role("button", name="Delete").click()
    page.locator("#confirm-ok").click()
    expect(page.locator('[data-stat="total"] .value')).to_have_text("11")
    expect(page.locator("#runs-summary")).to_have_text("Showing 11 of 11 runs")
    expect(page.locator(f'#runs-table tr[data-id="{ids[0]}"]')).to_have_count(0)
    expect(page.get_by_text("Execution not found")).to_have_count(0)


def test_the_per_node_table_sorts_by_a_column_so_the_failing_node_comes_first(page: Any, api: Api) -> None:
    """Hundreds of nodes in the API's order (total time) buried the one that fails: a header
    sorts the rows by its column, biggest first, and a second click the other way."""
    flow_id = api.create_flow("many nodes")
    slow = {f"step_{i:02d}": {"duration_ms": 1000 + i} for i in range(30)}
    runs = [
        {"flow_id": flow_id, "status": "error" if i < 2 else "success", "execution_time": 50,
         "node_results": slow, "errors": {"step_17": "boom"} if i < 2 else None}
        for i in range(6)
    ]  # fmt: skip
    api.batch(runs)
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    rows = page.locator("#nodes-table tbody tr")
    expect(rows).to_have_count(30)
    assert rows.first.get_attribute("data-node") != "step_17"
    header = page.locator("#nodes-table th", has_text="Failure rate")
    header.get_by_role("button").click()
    expect(rows.first).to_have_attribute("data-node", "step_17")
    expect(header).to_have_attribute("aria-sort", "descending")
    header.get_by_role("button").click()
    expect(rows.last).to_have_attribute("data-node", "step_17")
    expect(header).to_have_attribute("aria-sort", "ascending")
    page.locator("#nodes-table th", has_text="Node").get_by_role("button").click()
    expect(rows.first).to_have_attribute("data-node", "step_00")
