"""Issue 14's small things: job results as a key/value list, one date format, SQL numbers, replay wording."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in

# format.js's timestamp() under the tests' en-GB locale and UTC: what the history table shows
DATE_FORMAT = "%d %b %Y, %H:%M:%S"


def _date(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime(DATE_FORMAT)


def _finished(api: Api, name: str) -> dict[str, Any]:
    """The job once its run is over (a bounded wait for the server's own thread, not an assert)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{name}")
        if not job["running"] and job["last_finished"]:
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {name} did not finish")


def _is_time(text: str) -> bool:
    try:
        return "T" in text and datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def test_job_results_read_as_fields_with_one_date_format(
    browser: Any, live: LiveApp, api: Api, seeded: dict, request: Any
) -> None:
    api.ok(api.http.post("/api/v1/jobs/export/run"))
    job = _finished(api, "export")
    result = job["last_result"]
    assert job["last_ok"] and isinstance(result, dict) and result, job
    api.ok(api.http.post("/api/v1/jobs/retention/run"))
    retention = _finished(api, "retention")["last_result"]
    assert _is_time(retention["now"]), retention  # a time inside a result
    for size, width in (("desktop", 1280), ("phone", 390)):
        page = new_page(browser, live, width=width, height=900)
        shot = Screens(page, f"{request.node.name}-{size}")
        try:
            sign_in(page, api.key)
            page.goto("/#/jobs")
            row = page.locator('#jobs-table tr[data-job="export"]')
            expect(row).to_be_visible()
            cell = row.locator('td[data-col="result"]')
            expect(cell).not_to_contain_text("keys}")
            for key, value in result.items():
                dd = cell.locator(f'dd[data-key="{key}"]')
                expect(dd).to_have_count(1)
                if isinstance(value, int) and not isinstance(value, bool) and not key.endswith(("_s", "_ms")):
                    expect(dd).to_have_text(f"{value:,}")  # thousands separators
                elif isinstance(value, str):  # a time in the one date format, other text as it is
                    expect(dd).to_have_text(_date(value) if _is_time(value) else value)
            retention_now = page.locator(
                '#jobs-table tr[data-job="retention"] td[data-col="result"] dd[data-key="now"]'
            )
            expect(retention_now).to_have_text(_date(retention["now"]))
            # the same format as every other screen, not the browser's toLocaleString()
            expect(row.locator('td[data-col="last-run"]')).to_have_text(_date(job["last_finished"]))
            if size == "phone":
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                button = row.get_by_role("button", name="Run export now")
                box = button.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            shot("jobs")
            assert not page.js_errors, page.js_errors
        finally:
            page.context.close()


def test_sql_numbers_are_right_aligned_and_rounded(page: Any, shot: Any, api: Api, seeded: dict) -> None:
    api.ok(api.http.post("/api/v1/exports/run"))
    sign_in(page, api.key)
    page.goto("/#/sql")
    page.get_by_label("Query").fill(
        "SELECT 1234567::BIGINT AS n, 3.14159265::DOUBLE AS x, 0.000123456::DOUBLE AS small, 2.5::DOUBLE AS half,"
        " 1234.5::DECIMAL(10, 2) AS d, 'a, b' AS s, NULL::DOUBLE AS nothing"
    )
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#sql-summary")).to_contain_text("1 row")
    cells = page.locator("#sql-result tbody td")
    assert cells.all_inner_texts() == ["1,234,567", "3.142", "0.000123", "2.5", "1,234.5", "a, b", "null"]
    aligns = [c.evaluate("e => getComputedStyle(e).textAlign") for c in cells.all()]
    assert aligns[:5] == ["right"] * 5 and aligns[5] in ("left", "start")
    heads = page.locator("#sql-result thead th")
    assert heads.nth(0).evaluate("e => getComputedStyle(e).textAlign") == "right"
    shot("sql-numbers")
    # the downloads keep the exact values
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert csv[1].startswith("1234567,3.14159265,0.000123456,2.5,")


def test_replay_says_what_it_gives_and_offers_to_run_again(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    flow_id, ids = seeded["flow_id"], seeded["ids"]
    replay = api.get(f"/api/v1/flows/{flow_id}/executions/{ids[1]}/replay")
    sign_in(page, api.key)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/#/flows/{flow_id}/runs/{ids[1]}")
    box = page.locator("#replay")
    expect(box.get_by_role("heading")).to_have_text("Replay: the payload to run this again")
    expect(page.locator("#replay-help")).to_contain_text("run this execution again")
    expect(page.locator("#replay-help")).to_contain_text("does not run flows itself")
    button = box.get_by_role("button", name="Run again in Open WebUI")
    expect(button).to_be_visible()
    expect(page.locator("#run-again-help")).to_contain_text("execution happens in the browser")
    button.click()
    status = page.locator("#run-again-status")
    expect(status).to_contain_text("Flow execution is handled client-side")
    expect(status).to_have_attribute("data-answer", "delegated_to_client")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert json.loads(copied) == replay["inputs"]
    shot("replay")
