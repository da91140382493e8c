"""The dashboard tester's findings: time zones of filters and labels, retention form input, chart
axes, signature links, empty analytics, error pages, and runs of an older flow version."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, close_page, jwt, new_page, sign_in, standard_runs
from tests.factories import bearer

# format.js's timestamp() under the en-GB locale: what the lists show
SHOWN = "%d %b %Y, %H:%M:%S"


def _page(browser: Any, live: LiveApp, request: Any, suffix: str = "", **kw: Any) -> tuple[Any, Screens]:
    page = new_page(browser, live, **kw)
    return page, Screens(page, f"{request.node.name}{suffix}")


def _run(flow_id: str, created: datetime, status: str = "success", error: str = "") -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "status": status,
        "inputs": {"prompt": "hi"},
        "outputs": {},
        "node_results": {"model_1": {"modelId": "gpt-4o-mini", "content": "ok"}},
        "errors": {"model_1": error} if status == "error" else None,
        "execution_time": 900,
        "created_at": created.isoformat(),
    }


# 1. History's From/Until read in the zone the list shows; times labelled with their zone


def test_history_from_reads_the_shown_zone_in_a_new_york_browser(
    browser: Any, live: LiveApp, api: Api, seeded: dict, request: Any
) -> None:
    flow_id, ids = seeded["flow_id"], seeded["ids"]
    silenced = api.create_flow("silenced-zone-label")  # the seeded flow stays as it is
    silence = {"flow_id": silenced, "duration": "2h", "comment": "e2e"}
    api.ok(api.http.post("/api/v1/alerts/silences", json=silence))
    page, shot = _page(browser, live, request, timezone_id="America/New_York")
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator("#runs-summary")).to_have_text("Showing 12 of 12 runs")
        # the fifth row's Started time, typed into From as shown: that run and the four newer
        shown = page.locator("#runs-table tbody tr").nth(4).locator("a.run-link").inner_text()
        value = datetime.strptime(shown, SHOWN).strftime("%Y-%m-%dT%H:%M")  # as typed: to the minute
        page.locator("#f-from").fill(value)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#runs-summary")).to_have_text("Showing 5 of 5 runs")
        expect(page.locator('[data-stat="total"] .value')).to_have_text("5")
        expect(page.locator("#runs-table thead")).to_contain_text("Started (UTC)")
        expect(page.locator('label[for="f-from"]')).to_have_text("From (UTC)")
        expect(page.locator('label[for="f-to"]')).to_have_text("Until (UTC)")
        shot("history-from")
        # Until the same time: the seven older ones (Until is exclusive)
        page.locator("#f-from").fill("")
        page.locator("#f-to").fill(value)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#runs-summary")).to_have_text("Showing 7 of 7 runs")

        # the other screens with times say their zone
        page.goto(f"/#/search?flow={flow_id}")
        expect(page.locator("#search-table thead")).to_contain_text("Time (UTC)")
        expect(page.locator('label[for="search-after"]')).to_have_text("From (UTC)")
        page.locator("#search-after").fill(value)
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#search-summary")).to_have_text("Showing 5 of 5 runs")
        page.goto(f"/#/flows/{flow_id}/runs/{ids[2]}")
        expect(page.locator("#run-time")).to_have_text(re.compile(r"\d\d:\d\d:\d\d UTC$"))
        expect(page.locator("#a-status")).to_contain_text(re.compile(r"on .+ UTC$"))
        shot("detail")
        page.goto("/#/jobs")
        expect(page.locator("#jobs-table thead")).to_contain_text("Last run (UTC)")
        expect(page.locator("#jobs-table thead")).to_contain_text("Next run (UTC)")
        page.goto(f"/#/flows/{silenced}/alerts")
        expect(page.locator("#silences-table")).to_contain_text(re.compile(r"until .+ UTC"))

        # with the browser's own zone chosen, the fields and labels follow it
        page.goto(f"/#/flows/{flow_id}/analytics?tz=local")
        expect(page.locator("#charts")).to_have_attribute("data-tz", "America/New_York")
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator('label[for="f-from"]')).to_have_text("From (America/New_York)")
        shown = page.locator("#runs-table tbody tr").nth(2).locator("a.run-link").inner_text()
        local = datetime.strptime(shown, SHOWN).strftime("%Y-%m-%dT%H:%M")
        page.locator("#f-from").fill(local)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#runs-summary")).to_have_text("Showing 3 of 3 runs")
        shot("history-local")
    finally:
        close_page(page)


# 2 and 3. Retention: refused input, and an all-empty policy only on purpose


def test_retention_refuses_a_value_that_is_not_a_number(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("retention-typed-words")
    api.batch(standard_runs(flow_id))
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}") if "/retention/" in r.url else None)
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/retention")
    expect(page.locator("#policy-in-force")).to_contain_text("Follows the global policy")
    field = page.locator("#p-max_age_days")
    field.fill("thirty")
    sent.clear()
    page.get_by_role("button", name="Dry run these values").click()
    expect(page.locator("#p-max_age_days-error")).to_have_text("enter a number of days, like 30")
    expect(page.locator("#dry-run-summary")).to_have_count(0)
    page.get_by_role("button", name="Save as this flow's policy").click()
    expect(page.locator("#retention-status")).to_contain_text("Nothing was sent")
    page.locator("#p-keep_last").fill("12.5")
    page.get_by_role("button", name="Save as this flow's policy").click()
    expect(page.locator("#p-keep_last-error")).to_have_text("enter a whole number")
    expect(page.locator("#p-max_age_days-error")).not_to_be_empty()
    shot("refused")
    assert sent == [], sent
    assert api.get(f"/api/v1/flows/{flow_id}/retention/policy")["inherited"] is True
    # a number goes through, a decimal comma too
    field.fill("2,5")
    page.locator("#p-keep_last").fill("")
    page.get_by_role("button", name="Dry run these values").click()
    expect(page.locator("#dry-run-summary")).to_contain_text("Would delete")
    expect(page.locator("#p-max_age_days-error")).to_be_empty()


def test_saving_an_empty_policy_asks_first(browser: Any, live: LiveApp, request: Any) -> None:
    user = "e2e-retention-user"
    headers = bearer(user)
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        r = http.post("/api/v1/flows/create", json={"name": "users-own-flow", "nodes": [], "edges": []})
        assert r.status_code < 300, r.text
        flow_id = r.json()["id"]
        policy = f"/api/v1/flows/{flow_id}/retention/policy"
        assert http.get(policy).json()["inherited"] is True
        page, shot = _page(browser, live, request)
        try:
            sign_in(page, jwt(user))
            page.goto(f"/#/flows/{flow_id}/retention")
            expect(page.locator("#policy-in-force")).to_contain_text("only admins can see the global policy")
            expect(page.locator("#policy-fields-note")).to_contain_text("not the policy in force")
            expect(page.locator("#p-max_age_days")).to_have_value("")
            shot("inherited")
            page.get_by_role("button", name="Save as this flow's policy").click()
            dialog = page.locator("#confirm")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("keep every run")
            expect(dialog).to_contain_text("no longer follow the global policy")
            shot("confirm")
            page.keyboard.press("Escape")
            expect(page.locator("#retention-status")).to_have_text("Not saved.")
            assert http.get(policy).json()["inherited"] is True
            page.get_by_role("button", name="Save as this flow's policy").click()
            page.locator("#confirm-ok").click()
            expect(page.locator("#policy-in-force")).to_contain_text("This flow's own policy")
            expect(page.locator("#policy-in-force")).to_contain_text("every run is kept")
            stored = http.get(policy).json()
            assert stored["inherited"] is False and stored["max_age_days"] is None, stored
        finally:
            close_page(page)


# 4. Chart axes: dates for day buckets, labels that never overlap


def _tick_gaps(page: Any, chart: str) -> tuple[list[str], list[float]]:
    """The x labels as drawn and, between neighbours, the room left once both labels are drawn."""
    figure = page.locator(f'figure[data-chart="{chart}"][data-drawn="true"]')
    expect(figure).to_have_attribute("data-x-ticks", re.compile(r"^\[\["))
    ticks = json.loads(figure.get_attribute("data-x-ticks"))
    widths = page.evaluate(
        """labels => {
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
            return labels.map((t) => ctx.measureText(t).width);
        }""",
        [label for _, label in ticks],
    )
    gaps = [(ticks[i + 1][0] - ticks[i][0]) - (widths[i] + widths[i + 1]) / 2 for i in range(len(ticks) - 1)]
    return [label for _, label in ticks], gaps


def test_day_buckets_have_date_ticks_that_do_not_overlap(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    flow_id = api.create_flow("axis-days")
    now = datetime.now(UTC)
    api.batch([_run(flow_id, now - timedelta(hours=5 + 9 * i)) for i in range(18)])  # every day of 7
    for width, suffix in ((1280, "-desktop"), (390, "-phone")):
        page, shot = _page(browser, live, request, suffix, width=width, locale="en-US")
        try:
            sign_in(page, api.key)
            page.goto(f"/#/flows/{flow_id}/analytics")
            for chart in ("runs", "duration", "cost", "anomalies"):
                labels, gaps = _tick_gaps(page, chart)
                assert len(labels) >= 2, labels
                assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", t) for t in labels), labels  # "Nov 7"
                assert min(gaps) >= 4, (chart, labels, gaps)
            shot("7-days")
            page.goto(f"/#/flows/{flow_id}/analytics?range=24h&bucket=hour")
            labels, gaps = _tick_gaps(page, "runs")
            assert min(gaps) >= 4, (labels, gaps)  # "12:00 AM" is wide
            shot("24-hours")
        finally:
            close_page(page)


# 5. A failure signature's link searches the same period, and every message of the signature


def test_signature_link_finds_as_many_runs_as_its_count(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("signature-period")
    now = datetime.now(UTC)
    # one signature, "... after <n> retries ...", in 40 texts: Search by the latest text found 1
    error = "vector store refused after {} retries: quota exhausted for index e2e-signature"
    recent = [_run(flow_id, now - timedelta(hours=2 + 3 * i), "error", error.format(i)) for i in range(40)]
    older = [
        _run(flow_id, now - timedelta(days=10, hours=3 * i), "error", error.format(i)) for i in range(20)
    ]
    api.batch(recent + older)
    sign_in(page, api.key)
    page.goto("/#/?period=7d")
    row = page.locator("#signatures-table tbody tr", has_text="signature-period")
    expect(row.locator("td").nth(3)).to_have_text("40")
    shot("overview")
    row.get_by_role("link").click()
    expect(page.locator("#search-summary")).to_have_text("Showing 40 of 40 runs")
    expect(page.locator("#search-after")).not_to_have_value("")
    expect(page.locator("#search-signature_node")).to_have_value("model_1")
    expect(page.locator("#search-signature")).to_have_value(
        "vector store refused after <n> retries: quota exhausted for index e2e-signature"
    )
    shot("search")
    # the flow's own failures table links the same way, over its range (7 days by default)
    page.goto(f"/#/flows/{flow_id}/analytics")
    link = page.locator("#failures-table tbody tr").first.get_by_role("link")
    expect(link).to_contain_text("after <n> retries")
    link.click()
    expect(page.locator("#search-summary")).to_have_text("Showing 40 of 40 runs")


# 6. Analytics of a range without runs: the empty state only


def test_empty_analytics_shows_only_the_empty_state(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("analytics-nothing")
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    expect(page.locator("#charts")).to_contain_text("No runs in this range")
    expect(page.locator("#charts")).to_have_attribute("data-total-runs", "0")
    expect(page.locator("#anomalies")).to_contain_text("No anomalies in this range")
    expect(page.locator("figure.chart")).to_have_count(0)
    expect(page.locator("#charts")).not_to_contain_text("failed")
    shot("empty")


# 7. Error pages say what happened and offer a way back


def test_error_pages_say_what_happened_and_offer_a_way_back(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    flow_id = api.create_flow("errors-way-back")
    [run_id] = api.batch([_run(flow_id, datetime.now(UTC) - timedelta(hours=1))])
    api.ok(api.http.delete(f"/api/v1/flows/{flow_id}/executions/{run_id}"))
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/runs/{run_id}")
    panel = page.locator("#view .error-panel")
    expect(panel.locator("strong")).to_have_text("Not found")
    expect(panel).to_contain_text("Execution not found")
    expect(panel.get_by_role("button", name="Try again")).to_have_count(0)
    shot("deleted-run")
    panel.get_by_role("link", name="Back to the runs of “errors-way-back”").click()
    expect(page.locator("#runs")).to_contain_text("No runs yet")

    # another user's private flow
    page.evaluate("localStorage.removeItem('flowhistory.token')")
    sign_in(page, jwt("e2e-stranger"))
    page.goto(f"/#/flows/{seeded['flow_id']}")
    panel = page.locator("#view .error-panel")
    expect(panel).to_have_attribute("data-status", re.compile(r"^40[34]$"))
    expect(panel.locator("strong")).to_have_text(re.compile(r"^(No access|Not found)$"))
    expect(panel.get_by_role("button", name="Try again")).to_have_count(0)
    shot("no-access")
    panel.get_by_role("link", name="Back to the flows list").click()
    expect(page.locator("h1")).to_have_text("Flows")


# 8. A run of an older flow version: labelled and ordered by the definition that ran


OLD_DEFINITION = {
    # listed out of order: the edges give the order
    "nodes": [
        {"id": "output_1", "data": {"label": "Answer"}},
        {"id": "model_1", "data": {"label": "Generate"}},
        {"id": "rerank_1", "data": {"label": "Rerank"}},
        {"id": "input_1", "data": {"label": "Question"}},
    ],
    "edges": [
        {"source": "input_1", "target": "rerank_1"},
        {"source": "rerank_1", "target": "model_1"},
        {"source": "model_1", "target": "output_1"},
    ],
}


def test_a_run_of_an_older_version_reads_as_it_ran(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("versioned-timeline")  # today: input_1, model_1, output_1, unlabelled
    now = datetime.now(UTC)
    old = _run(flow_id, now - timedelta(hours=3))
    old["node_results"] = {
        "input_1": {"value": "q"},
        "rerank_1": {"value": "docs"},
        "model_1": {"modelId": "gpt-4o-mini", "content": "a"},
        "output_1": {"value": "a"},
    }
    old["flow"] = OLD_DEFINITION
    [old_id, new_id] = api.batch([old, _run(flow_id, now - timedelta(hours=1))])
    replay = api.get(f"/api/v1/flows/{flow_id}/executions/{old_id}/replay")
    assert replay["definition_is_current"] is False, replay
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/runs/{old_id}")
    rows = page.locator("#timeline li.tl-row")
    expect(rows).to_have_count(4)
    ran_order = ["input_1", "rerank_1", "model_1", "output_1"]
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.node)") == ran_order
    expect(rows).to_contain_text(["Question", "Rerank", "Generate", "Answer"])
    expect(page.locator("#timeline-caption")).to_contain_text("the flow version that ran")
    expect(page.locator('#nodes article[data-node="rerank_1"] .node-label')).to_have_text("Rerank")
    shot("timeline")
    page.goto(f"/#/compare/{old_id}/{new_id}")
    expect(page.locator('#compare-nodes tr[data-node="rerank_1"] th .node-label')).to_have_text("Rerank")
    expect(page.locator('#compare-nodes tr[data-node="model_1"] th .node-label')).to_have_text("Generate")
    differing = page.locator('#compare-nodes tr[data-differs="true"]').evaluate_all(
        "rs => rs.map(r => r.dataset.node)"
    )
    order = [n for n in ran_order if n in differing]
    assert differing == order, differing
    shot("compare")
