"""The history panel: the seeded runs, badges and durations, filters, paging, deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import DURATIONS, ERRORS, Api, LiveApp, jwt, new_page, sign_in, standard_runs


def open_history(page: Any, api: Api, flow_id: str) -> None:
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator("#runs-summary")).to_be_visible()


def rows(page: Any) -> Any:
    return page.locator("#runs-table tbody tr")


def test_the_panel_shows_every_seeded_run_with_badges_durations_and_stats(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    open_history(page, api, seeded["flow_id"])
    expect(page.locator("#runs-summary")).to_have_text("Showing 12 of 12 runs")
    expect(rows(page)).to_have_count(12)
    expect(page.locator('#runs-table .badge[data-status="success"]')).to_have_count(8)
    expect(page.locator('#runs-table .badge[data-status="error"]')).to_have_count(3)
    expect(page.locator('#runs-table .badge[data-status="aborted"]')).to_have_count(1)
    expect(page.locator('#runs-table .badge[data-status="error"]').first).to_contain_text("✗")
    expect(page.locator('#runs-table .badge[data-status="aborted"]')).to_contain_text("⊘")
    expect(page.locator('#runs-table .badge[data-status="success"]').first).to_contain_text("✓")
    # newest first; durations in ms under a second, in s above
    durations = page.locator("#runs-table tbody td[data-ms]").all_inner_texts()
    assert durations[0] == "850 ms"
    assert durations[1] == "2.50 s"
    assert durations[7] == "15.0 s"
    assert len(durations) == len(DURATIONS)
    stats = api.stats(seeded["flow_id"])
    expect(page.locator('[data-stat="total"] .value')).to_have_text("12")
    expect(page.locator('[data-stat="success_rate"] .value')).to_have_text("66.7 %")
    expect(page.locator('[data-stat="avg"] .value')).to_have_text(
        f"{stats['avg_execution_time'] / 1000:.2f} s"
    )
    expect(page.locator('[data-stat="errors"] .value')).to_have_text("3 / 1")
    expect(page.locator('[data-stat="cost"] .value')).not_to_have_text("—")
    shot("history")


def test_filters_by_status_error_text_tags_and_time(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    open_history(page, api, seeded["flow_id"])
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 3 of 3 runs")
    expect(page.locator('#runs-table .badge[data-status="success"]')).to_have_count(0)
    shot("status-error")

    page.get_by_label("Status").select_option("")
    page.get_by_label("Text in errors").fill("TIMEOUT")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-summary")).to_have_text(
        f"Showing 2 of {sum('timeout' in e for e in ERRORS.values())} runs"
    )
    shot("error-text")

    page.get_by_label("Text in errors").fill("")
    page.get_by_label("Tags (all of)").fill("regression")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
    page.get_by_label("Tags (all of)").fill("regression, slow")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 1 of 1 run")
    expect(rows(page).first).to_have_attribute("data-id", seeded["ids"][5])
    shot("tags")

    # the filters are in the URL: a reload keeps them
    page.reload()
    expect(page.get_by_label("Tags (all of)")).to_have_value("regression, slow")
    expect(page.locator("#runs-summary")).to_have_text("Showing 1 of 1 run")

    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 12 of 12 runs")
    since = (datetime.now(UTC) - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M")  # the page runs in UTC
    page.get_by_label("From").fill(since)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 4 of 4 runs")  # 1, 8, 15 and 22 hours ago
    shot("since-24h")

    page.get_by_label("Text in errors").fill("no such error anywhere")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No runs match these filters")).to_be_visible()
    shot("no-match")


def test_paging_loads_more_runs(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("paged")
    now = datetime.now(UTC)
    runs = [r for k in range(5) for r in standard_runs(flow_id, now - timedelta(minutes=k))][:55]
    api.batch(runs)
    open_history(page, api, flow_id)
    expect(page.locator("#runs-summary")).to_have_text("Showing 50 of 55 runs")
    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 55 of 55 runs")
    expect(rows(page)).to_have_count(55)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    ids = [r.get_attribute("data-id") for r in rows(page).all()]
    assert len(set(ids)) == 55
    shot("paged", full_page=False)


def test_delete_a_run_with_confirmation_then_delete_all(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("deletable")
    ids = api.batch(standard_runs(flow_id))
    open_history(page, api, flow_id)
    expect(page.locator('[data-stat="total"] .value')).to_have_text("12")

    first = rows(page).first
    assert first.get_attribute("data-id") == ids[0]
    first.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm")).to_be_visible()
    shot("confirm-delete", full_page=False)
    page.locator("#confirm-cancel").click()  # cancel keeps it
    expect(page.locator("#confirm")).to_be_hidden()
    expect(rows(page)).to_have_count(12)

    rows(page).first.get_by_role("button", name="Delete").click()
    page.locator("#confirm-ok").click()
    expect(page.locator('[data-stat="total"] .value')).to_have_text("11")
    expect(page.locator("#runs-summary")).to_have_text("Showing 11 of 11 runs")
    expect(page.locator(f'#runs-table tr[data-id="{ids[0]}"]')).to_have_count(0)
    expect(page.locator('[data-stat="success_rate"] .value')).to_have_text(f"{7 / 11 * 100:.1f} %")
    assert api.stats(flow_id)["total_executions"] == 11
    shot("after-delete")

    page.get_by_role("button", name="Delete all runs").click()
    expect(page.locator("#confirm-text")).to_contain_text("All 11 runs")
    page.locator("#confirm-ok").click()
    expect(page.get_by_text("No runs yet")).to_be_visible()
    expect(page.locator('[data-stat="total"] .value')).to_have_text("0")
    expect(page.get_by_role("button", name="Delete all runs")).to_be_disabled()
    assert api.stats(flow_id)["total_executions"] == 0
    shot("after-delete-all")


def test_a_reader_is_not_offered_what_only_writers_may_do(browser: Any, live: LiveApp, api: Api) -> None:
    """Delete, annotate and the retention policy answer a reader 403: they are not offered (the
    buttons were there, each failing with 'You do not have permission')."""
    flow_id = api.create_flow("read-only here", access_control={"read": {"user_ids": ["e2e-ro"]}})
    [run_id] = api.batch(
        [{"flow_id": flow_id, "status": "success", "execution_time": 5, "user_id": "e2e-ro"}]
    )
    page = new_page(browser, live)
    try:
        sign_in(page, jwt("e2e-ro"))
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator(f'#runs tr[data-id="{run_id}"]')).to_be_visible()
        expect(page.locator('[data-action="delete"]')).to_have_count(0)
        expect(page.locator("#delete-all")).to_have_count(0)
        page.goto(f"/#/flows/{flow_id}/runs/{run_id}")
        expect(page.locator("#a-note")).to_be_disabled()
        expect(page.locator("#a-status")).to_contain_text("You may read this flow, not change it")
        page.goto(f"/#/flows/{flow_id}/retention")
        expect(page.locator("#dry-run-stored")).to_be_disabled()
        expect(page.locator("#retention-status")).to_contain_text("You may read this flow")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
    admin = new_page(browser, live)  # the same screens offer them to a writer
    try:
        sign_in(admin, api.key)
        admin.goto(f"/#/flows/{flow_id}")
        expect(admin.locator('[data-action="delete"]')).to_have_count(1)
        admin.goto(f"/#/flows/{flow_id}/runs/{run_id}")
        expect(admin.locator("#a-note")).to_be_enabled()
    finally:
        admin.context.close()
