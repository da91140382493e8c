"""An outside tester's dashboard defects, each checked in the browser against the real server:
Analytics offering a range and bucket the API refuses (90 days by hour), a rule never evaluated
shown as NO_DATA, Search ignoring a number of its link that is no number, the version
regressions' Δ p95 reading "-0 ms" and unsigned, and the overview's "needs attention" bar
covering a flow's name on a phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, close_page, jwt, new_page, searches_sent, sign_in

MINUS = "\u2212"


def _run(
    flow_id: str, when: datetime, ms: int, *, version: str = "v1", failed: bool = False
) -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "flow_version": version,
        "status": "error" if failed else "success",
        "inputs": {"prompt": "hi"},
        "outputs": {},
        "node_results": {"model_1": {"modelId": "gpt-4o-mini", "content": "ok"}},
        "errors": {"model_1": "upstream refused"} if failed else None,
        "execution_time": ms,
        "created_at": when.isoformat(),
    }


# 1. Analytics never offers a range and bucket the API refuses


RANGES = ("24h", "7d", "30d", "90d")
BUCKETS = ("auto", "hour", "day", "week")


def test_analytics_never_offers_more_buckets_than_the_api_draws(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("fixes-18-buckets")
    now = datetime.now(UTC)
    api.batch([_run(flow_id, now - timedelta(hours=5 + 24 * i), 900) for i in range(4)])
    trends: list[str] = []
    page.on("response", lambda r: trends.append(f"{r.status} {r.url}") if "/trend?" in r.url else None)
    sign_in(page, api.key)

    # a link asking for 90 days by hour (2,160 buckets: the API answers 422) is shown by day,
    # and says so; the trend is never asked for by hour
    page.goto(f"/#/flows/{flow_id}/analytics?range=90d&bucket=hour&tz=utc")
    expect(page.locator('figure[data-chart="runs"]')).to_have_attribute("data-drawn", "true")
    expect(page.locator("#charts")).to_have_attribute("data-bucket", "day")
    expect(page.locator("#charts .error-panel")).to_have_count(0)
    expect(page.locator("#bucket-note")).to_have_text(
        "2,160 hour buckets in the last 90 days are more than the 2,000 a chart draws: shown by day."
    )
    expect(page.locator("#bucket")).to_have_value("day")
    hour = page.locator('#bucket option[value="hour"]')
    expect(hour).to_be_disabled()
    expect(hour).to_have_text("Hour (over 2,000 buckets)")
    shot("90d-by-hour-link")
    assert trends and all(t.startswith("200 ") and "bucket=day" in t for t in trends), trends

    # the picker: only the pairs over 2,000 buckets are disabled (of these, 90 days by hour)
    for range_ in RANGES:
        page.locator("#range").select_option(range_)
        for bucket in BUCKETS:
            option = page.locator(f'#bucket option[value="{bucket}"]')
            if (range_, bucket) == ("90d", "hour"):
                expect(option).to_be_disabled()
            else:
                expect(option).to_be_enabled()
    # hour chosen, then 90 days: the bucket moves to one that loads before anything is sent
    page.locator("#range").select_option("30d")
    page.locator("#bucket").select_option("hour")
    page.locator("#range").select_option("90d")
    expect(page.locator("#bucket")).to_have_value("day")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"range=90d&bucket=day"))
    expect(page.locator("#bucket-note")).to_have_count(0)  # asked for day: nothing to explain
    page.locator("#range").select_option("30d")
    expect(hour).to_be_enabled()
    expect(hour).to_have_text("Hour")

    # every pair the picker offers loads
    for range_ in RANGES:
        for bucket in BUCKETS:
            if (range_, bucket) == ("90d", "hour"):
                continue
            trends.clear()
            page.goto(f"/#/flows/{flow_id}/analytics?range={range_}&bucket={bucket}&tz=utc")
            expect(page.locator("#charts")).to_have_attribute("data-bucket", bucket)
            expect(page.locator("#charts figure, #charts [data-state]").first).to_be_visible()
            expect(page.locator("#charts .error-panel")).to_have_count(0)
            expect(page.locator("#bucket-note")).to_have_count(0)
            assert trends and all(t.startswith("200 ") for t in trends), (range_, bucket, trends)


# 2. A rule never evaluated has no state yet


def test_a_rule_never_evaluated_reads_not_evaluated_yet(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("fixes-18-never-evaluated")
    rule = api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "name": "fixes 18 never evaluated",
                "metric": "failure_rate",
                "operator": "gt",
                "threshold": 0.2,
                "window": "1h",
                "flow_id": flow_id,
            },
        )
    )
    assert rule["states"] == []
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/alerts")
    state = page.locator(f'#rules-table tr[data-rule="{rule["id"]}"] td').nth(2)
    expect(state.locator(".badge")).to_have_text("not evaluated yet")
    expect(state.locator(".badge")).to_have_class("badge badge-other")  # neutral, as OK markers
    expect(state).not_to_contain_text("NO_DATA")
    shot("not-evaluated")
    # evaluated over a window without runs: now it is NO_DATA (as docs/alerts.md says)
    page.get_by_role("button", name="Evaluate now").click()
    expect(state.locator('[data-state="NO_DATA"]')).to_have_text("NO_DATA")
    expect(state).not_to_contain_text("not evaluated yet")
    shot("evaluated")


# 3. Search refuses a number of its link that is no number


@pytest.mark.parametrize(
    ("param", "label"),
    [("min_ms", "Min duration (ms)"), ("max_ms", "Max duration (ms)"), ("rating", "Rating")],
)
def test_search_refuses_a_number_that_is_no_number(
    page: Any, shot: Any, api: Api, param: str, label: str
) -> None:
    flow_id = api.create_flow(f"fixes-18-search-{param}")
    api.batch([_run(flow_id, datetime.now(UTC) - timedelta(hours=1), 900)])
    sent = searches_sent(page)
    sign_in(page, api.key)
    for bad in ("abc", "1e999", "0x10"):
        page.goto(f"/#/search?flow={flow_id}&{param}={bad}")
        panel = page.locator("#search-results .error-panel")
        expect(panel.locator(".error-detail")).to_have_text(f'{label}: "{bad}" is not a number')
        expect(panel.get_by_role("button", name="Try again")).to_have_count(0)
        expect(page.locator("#search-summary")).to_have_count(0)
    shot("refused")
    assert sent == []  # nothing searched: every run of every flow was shown
    # numbers still go to the API, which refuses what is out of range, naming the field
    page.goto(f"/#/search?flow={flow_id}&{param}=-5")
    expect(page.locator("#search-results .error-panel")).to_contain_text("422")
    page.goto(f"/#/search?flow={flow_id}&{param}=1")
    expect(page.locator("#search-results .error-panel")).to_have_count(0)
    expect(page.locator("#search-summary")).to_be_visible()


# 4. Δ p95 of the version regressions: signed as Δ failure, a change that rounds to 0 is none


def test_version_p95_change_is_signed_and_a_float_noise_change_reads_no_change(
    page: Any, shot: Any, api: Api
) -> None:
    flow_id = api.create_flow("fixes-18-p95-change")
    start = datetime.now(UTC) - timedelta(days=5)
    # v1: p95 of 4 x 1000 and 1007 ms is 1005.6 (interpolated); v2: of 6 x 1000 and 1008 ms the same
    # 1005.6 in decimal, 1005.5999999999999 in floating point: the change is -1.1e-13 ms
    runs = [_run(flow_id, start + timedelta(minutes=i), 1007 if i == 4 else 1000) for i in range(5)]
    runs += [
        _run(flow_id, start + timedelta(days=1, minutes=i), 1008 if i == 6 else 1000, version="v2")
        for i in range(7)
    ]
    runs += [
        _run(flow_id, start + timedelta(days=2, minutes=i), 1278, version="v3") for i in range(5)
    ]  # +272.4
    runs += [_run(flow_id, start + timedelta(days=3, minutes=i), 1275, version="v4") for i in range(5)]  # -3
    api.batch(runs)
    changes = {v["flow_version"]: v["p95_change_ms"] for v in api.get(f"/api/v1/flows/{flow_id}/versions")}
    assert changes["v2"] != 0 and abs(changes["v2"]) < 1e-9, changes  # the noise the table showed as "-0 ms"

    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics?range=7d")
    table = page.locator("#versions-table")
    expect(table.locator("tbody tr")).to_have_count(4)

    def cells(version: str) -> tuple[Any, Any]:
        row = table.locator(f'tr[data-version="{version}"] td')
        return row.nth(4), row.nth(6)  # Δ failure, Δ p95

    expect(cells("v1")[1]).to_have_text("—")  # the first version: nothing to compare with
    failure, p95 = cells("v2")
    expect(p95).to_have_text("0 ms")
    expect(failure).to_have_text("0.0 pts")
    expect(cells("v3")[1]).to_have_text("+272 ms")
    expect(cells("v4")[1]).to_have_text(f"{MINUS}3 ms")
    shot("p95-changes")
    said = page.evaluate(
        """() => import("/static/js/format.js").then((f) =>
            [-2.27e-13, 0.4, -0.4, 0.6, 1203.7, -65000, null].map((ms) => f.durationChange(ms)))"""
    )
    assert said == ["0 ms", "0 ms", "0 ms", "+1 ms", "+1.20 s", f"{MINUS}1 min 5 s", "—"]


# 5. The overview's "needs attention" bar never covers the flow's name


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 720)])
def test_the_attention_bar_never_covers_the_flow_name(
    browser: Any, live: LiveApp, api: Api, request: Any, width: int, height: int
) -> None:
    flow_id = api.create_flow(f"Wfixes-18-attention-{width}")  # a wide first letter, where the bar was
    now = datetime.now(UTC)
    api.batch([_run(flow_id, now - timedelta(minutes=10 + i), 900, failed=True) for i in range(3)])
    rule = api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "name": f"fixes 18 attention {width}",
                "metric": "failure_rate",
                "operator": "gt",
                "threshold": 0.2,
                "window": "1d",
                "flow_id": flow_id,
            },
        )
    )
    api.ok(api.http.post(f"/api/v1/alerts/rules/{rule['id']}/evaluate"))
    page = new_page(browser, live, width=width, height=height)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto("/#/?period=24h")
        row = page.locator(f'#flows-table tr[data-flow="{flow_id}"]')
        expect(row).to_have_attribute("data-problem", "alert")
        cell = row.locator("td").first
        name = cell.get_by_role("link")
        name.scroll_into_view_if_needed()
        shadow = cell.evaluate("(td) => getComputedStyle(td).boxShadow")
        assert "inset" in shadow and "4px 0px 0px" in shadow, shadow  # the bar is there
        cell_box, name_box = cell.bounding_box(), name.bounding_box()
        assert cell_box and name_box
        bar_right = cell_box["x"] + 4
        assert name_box["x"] >= bar_right + 4, (cell_box, name_box)  # clear of the bar, with a gap
        assert name_box["x"] + name_box["width"] <= cell_box["x"] + cell_box["width"] + 0.5
        shot(f"attention-{width}")
    finally:
        close_page(page)


# 6. The rule form: others' channels kept, its numbers checked before anything is sent


def test_saving_a_rule_keeps_the_channels_the_editor_cannot_see(page: Any, api: Api) -> None:
    """An owner editing a rule sees only their own channels: the save sent the ticked ones, and
    an admin's channel on the rule was dropped without a word."""
    owner = "fixes18-owner"
    api.ok(api.http.post("/api/v1/users", json={"id": owner}))
    headers = {"Authorization": f"Bearer {jwt(owner)}"}
    flow_id = api.ok(
        api.http.post(
            "/api/v1/flows/create", json={"name": "fixes-18-kept", "nodes": [], "edges": []}, headers=headers
        )
    )["id"]
    channel = api.ok(
        api.http.post(
            "/api/v1/alerts/channels",
            json={"kind": "slack", "name": "admin's", "url": "http://127.0.0.1:9/x"},
        )
    )["id"]
    body = {
        "name": "fixes 18 kept",
        "metric": "error_count",
        "threshold": 3,
        "window": "1h",
        "flow_id": flow_id,
    }
    rule = api.ok(api.http.post("/api/v1/alerts/rules", json={**body, "channel_ids": [channel]}))
    sign_in(page, jwt(owner))
    page.goto(f"/#/flows/{flow_id}/alerts")
    page.locator(f'tr[data-rule="{rule["id"]}"]').get_by_role("button", name="Edit").click()
    page.fill("#r-threshold", "4")
    page.locator("#rule-form").get_by_role("button", name="Save rule").click()
    expect(page.locator("#rule-form")).to_have_count(0)
    saved = api.get(f"/api/v1/alerts/rules/{rule['id']}")
    assert saved["threshold"] == 4 and saved["channel_ids"] == [channel], saved
    close_page(page)


def test_the_rule_forms_numbers_are_checked_in_its_words(page: Any, api: Api) -> None:
    """Number() took "0x10" for 16 runs (stored) and "abc" for null; an emptied threshold got the
    API's "cannot be null: leave it out to keep it". Each is refused next to its field, unsent."""
    flow_id = api.create_flow("fixes-18-rule-numbers")
    rule = api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "name": "fixes 18 numbers",
                "metric": "error_count",
                "threshold": 3,
                "window": "1h",
                "flow_id": flow_id,
            },
        )
    )
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.method) if "/api/v1/alerts/rules/" in r.url and r.method == "PATCH" else None,
    )
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/alerts")
    page.locator(f'tr[data-rule="{rule["id"]}"]').get_by_role("button", name="Edit").click()
    for value in ("0x10", "abc", "1e3", "-1", "1.5"):
        page.fill("#r-min_runs", value)
        page.locator("#rule-form").get_by_role("button", name="Save rule").click()
        expect(page.locator("#r-min_runs-error")).to_have_text("enter a whole number of runs (0 or more)")
    page.fill("#r-min_runs", "2")
    page.fill("#r-threshold", "")
    page.locator("#rule-form").get_by_role("button", name="Save rule").click()
    expect(page.locator("#r-threshold-error")).to_have_text("enter the alert threshold")
    assert sent == []
    page.fill("#r-threshold", "5")
    page.locator("#rule-form").get_by_role("button", name="Save rule").click()
    expect(page.locator("#rule-form")).to_have_count(0)
    saved = api.get(f"/api/v1/alerts/rules/{rule['id']}")
    assert (saved["min_runs"], saved["threshold"]) == (2, 5), saved
    close_page(page)
