"""Retention screen: the policy in force, a dry run that changes nothing, saving a flow's policy, jobs."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, sign_in, standard_runs


def test_policy_dry_run_and_save(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("retained")
    api.batch(standard_runs(flow_id))  # 1 to 78 hours old
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/retention")
    expect(page.locator("#policy-in-force")).to_contain_text("Follows the global policy")
    expect(page.locator("#retention-jobs h2").first).to_have_text("Scheduled jobs")
    shot("retention")

    page.get_by_label("Delete runs older than (days)", exact=False).fill("-1")
    page.get_by_role("button", name="Dry run these values").click()
    expect(page.locator("#p-max_age_days-error")).not_to_be_empty()

    page.get_by_label("Delete runs older than (days)", exact=False).fill("2")
    page.get_by_role("button", name="Dry run these values").click()
    expected = api.ok(
        api.http.post(f"/api/v1/flows/{flow_id}/retention/dry-run", json={"policy": {"max_age_days": 2}})
    )
    [mine] = [f for f in expected["flows"] if f["flow_id"] == flow_id]
    assert mine["delete"] > 0
    expect(page.locator("#dry-run .panel")).to_have_attribute("data-delete", str(mine["delete"]))
    expect(page.locator("#dry-run-summary")).to_contain_text(f"Would delete {mine['delete']} runs")
    assert api.stats(flow_id)["total_executions"] == 12  # a dry run changes nothing
    shot("dry-run")

    page.get_by_role("button", name="Save as this flow's policy").click()
    expect(page.locator("#policy-in-force")).to_contain_text("This flow's own policy")
    expect(page.locator("#policy-in-force")).to_contain_text(
        "every run (successful, failed and aborted) kept 2 days"
    )
    assert api.get(f"/api/v1/flows/{flow_id}/retention/policy")["max_age_days"] == 2
    page.get_by_role("button", name="Dry run (policy in force)").click()
    expect(page.locator("#dry-run .panel")).to_have_attribute("data-delete", str(mine["delete"]))
    shot("saved")
