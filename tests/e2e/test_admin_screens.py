"""Admin screens: the scheduler's jobs and the SQL console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, jwt, sign_in


def test_jobs_screen_lists_the_scheduler_jobs(page: Any, shot: Any, api: Api) -> None:
    jobs = api.get("/api/v1/jobs")
    sign_in(page, api.key)
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Scheduled jobs")).to_be_visible()
    if jobs:
        expect(page.locator("#jobs-table tbody tr")).to_have_count(len(jobs))
        for job in jobs:
            expect(page.locator(f'#jobs-table tr[data-job="{job["name"]}"]')).to_be_visible()
    else:
        expect(page.get_by_text("No jobs")).to_be_visible()
    shot("jobs")


def test_sql_console_runs_a_query_and_shows_the_table(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    api.ok(api.http.post("/api/v1/exports/run"))  # the console reads the Parquet export
    flow_id = seeded["flow_id"]
    sign_in(page, api.key)
    page.get_by_role("link", name="SQL").click()
    page.get_by_label("Query").fill(
        f"SELECT status, count(*) AS runs FROM executions WHERE flow_id = '{flow_id}' GROUP BY status ORDER BY status"
    )
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#sql-summary")).to_contain_text("3 rows")
    expect(page.locator("#sql-result thead")).to_contain_text("runs")
    cells = [r.locator("td").all_inner_texts() for r in page.locator("#sql-result tbody tr").all()]
    assert cells == [["aborted", "1"], ["error", "3"], ["success", "8"]]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv = Path(download.value.path()).read_text(encoding="utf-8")
    assert csv == "status,runs\naborted,1\nerror,3\nsuccess,8"
    shot("sql-result")
    page.get_by_label("Query").fill("SELEC nonsense")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#sql-error")).not_to_be_empty()
    shot("sql-refused")


def test_admin_screens_tell_other_users_they_are_for_admins(page: Any, shot: Any) -> None:
    sign_in(page, jwt("e2e-plain-user"))
    page.goto("/#/sql")
    expect(page.get_by_text("Admins only")).to_be_visible()
    page.goto("/#/jobs")
    expect(page.get_by_text("Admins only")).to_be_visible()
    shot("jobs-not-admin")
