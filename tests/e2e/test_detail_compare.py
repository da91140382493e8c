"""A run's detail (nodes, tokens, cost, folded JSON, errors, annotation) and the compare view."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import LONG_TEXT, Api, sign_in


def test_detail_shows_nodes_tokens_cost_errors_and_truncated_json(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    flow_id, ids = seeded["flow_id"], seeded["ids"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/runs/{ids[1]}")  # an error run: timeout on model_1
    run = api.get(f"/api/v1/flows/{flow_id}/executions/{ids[1]}")
    expect(page.locator("#run-summary .badge")).to_have_attribute("data-status", "error")
    expect(page.locator("#run-duration")).to_have_text("2.50 s")
    expect(page.locator("#run-tokens")).to_have_text(f"{run['tokens_in']} in / {run['tokens_out']} out")
    cost = page.locator("#run-cost").inner_text()
    assert cost.startswith("$") and abs(float(cost[1:]) - run["cost"]) <= run["cost"] * 0.05, cost
    expect(page.locator("#run-errors")).to_contain_text("upstream timeout after 30s")
    expect(page.locator("#nodes article")).to_have_count(3)
    model = page.locator('#nodes article[data-node="model_1"]')
    expect(model).to_have_class("node node-error")
    expect(model.locator(".errors-box")).to_contain_text("upstream timeout after 30s")
    expect(model.locator("header")).to_contain_text("gpt-4o-mini")
    expect(model.locator("header")).to_contain_text("2.40 s")
    expect(model.locator("header")).to_contain_text("101 in / 51 out")
    # the node's cost as the server priced it at ingest (the run's `nodes`)
    node_cost = next(n["cost"] for n in run["nodes"] if n["node_id"] == "model_1")
    shown = model.locator("[data-node-cost]").inner_text().removeprefix("· $")
    assert node_cost > 0 and abs(float(shown) - node_cost) <= node_cost * 0.05, shown
    expect(page.locator('#nodes article[data-node="input_1"] .badge')).to_have_attribute(
        "data-status", "success"
    )
    shot("detail-error")

    page.goto(f"/#/flows/{flow_id}/runs/{ids[0]}")  # a long model answer
    expect(page.locator("#run-summary .badge")).to_have_attribute("data-status", "success")
    expect(page.locator("#run-errors")).to_have_count(0)
    model = page.locator('#nodes article[data-node="model_1"]')
    details = model.locator(".json details").first
    expect(details).not_to_have_attribute("open", "")  # node results are folded
    details.locator("summary").first.click()
    truncated = model.locator('.json [data-truncated="true"]')
    expect(truncated).to_have_count(1)
    assert len(truncated.inner_text()) < len(LONG_TEXT)
    model.get_by_role("button", name=f"show all {len(LONG_TEXT)} characters").click()
    expect(model.locator('.json [data-truncated="false"]')).to_have_text(f'"{LONG_TEXT}"')
    shot("detail-json-show-all")


def test_annotation_is_edited_and_saved(page: Any, shot: Any, api: Api) -> None:
    from tests.e2e.conftest import standard_runs

    flow_id = api.create_flow("annotated")
    ids = api.batch(standard_runs(flow_id)[:3])
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/runs/{ids[0]}")
    page.get_by_label("Note", exact=True).fill("Looks right to me")
    page.get_by_label("Tags (comma-separated)").fill("checked, golden")
    page.get_by_label("Good (+1)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#a-status")).to_contain_text("Saved ✓")
    saved = api.get(f"/api/v1/flows/{flow_id}/executions/{ids[0]}/annotation")
    assert (saved["note"], saved["tags"], saved["rating"]) == ("Looks right to me", ["checked", "golden"], 1)

    page.reload()
    expect(page.get_by_label("Note", exact=True)).to_have_value("Looks right to me")
    expect(page.get_by_label("Tags (comma-separated)")).to_have_value("checked, golden")
    expect(page.get_by_label("Good (+1)")).to_be_checked()

    page.get_by_label("Tags (comma-separated)").fill("not a valid tag!")  # spaces and ! are refused
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#a-tags-error")).to_contain_text("must start with a letter")
    expect(page.locator("#a-status")).to_have_text("Not saved.")
    shot("annotation-invalid")
    assert api.get(f"/api/v1/flows/{flow_id}/executions/{ids[0]}/annotation")["tags"] == ["checked", "golden"]


def test_compare_two_runs_differing_nodes_first(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    flow_id, ids = seeded["flow_id"], seeded["ids"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    table = page.locator("#runs-table")
    table.locator(f'tr[data-id="{ids[0]}"] input[type=checkbox]').check()
    expect(page.get_by_role("button", name="Compare selected (1)")).to_be_disabled()
    table.locator(f'tr[data-id="{ids[3]}"] input[type=checkbox]').check()
    page.get_by_role("button", name="Compare selected (2)").click()
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
    nodes = page.locator("#compare-nodes tbody tr")
    expect(nodes).to_have_count(3)
    differs = [n.get_attribute("data-differs") for n in nodes.all()]
    assert differs == ["true", "true", "false"]  # model_1 and output_1 differ, input_1 the same
    assert nodes.nth(2).get_attribute("data-node") == "input_1"
    expect(nodes.first.locator('[data-kind="changed"]').first).to_be_visible()
    expect(page.locator("#compare-runs section")).to_have_count(2)
    shot("compare")

    # "compare with…" from a detail page
    page.goto(f"/#/flows/{flow_id}/runs/{ids[1]}")
    page.get_by_label("Compare with…").select_option(ids[2])
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page).to_have_url(re.compile(f"#/compare/{ids[1]}/{ids[2]}$"))
    expect(page.locator("#compare-runs section").first).to_have_attribute("data-run", ids[1])
    shot("compare-from-detail")
