"""The dashboard tester's report (wrong numbers, broken states, confusing screens), each finding
checked through the browser: format.js's formatters in the page, and the screens over one flow
seeded for them (a model node with no price, the same error at two nodes, more than a page of runs,
a long name, an error message of emoji)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, jwt, new_page, sign_in

MESSAGE = "context length exceeded: 131072 tokens"
AT_MODEL_2 = 15  # runs failing at model_2 with MESSAGE; model_1 ran before it
AT_MODEL_1 = 8  # runs failing at model_1 with MESSAGE; model_2 never ran
SUCCESSES = 37  # model_1 (priced) and model_2 (no price)
EMOJI_ERROR = "E" + "😀" * 100
RUNS = AT_MODEL_2 + AT_MODEL_1 + SUCCESSES + 1  # + one run failing with EMOJI_ERROR
NAME = "Report fixes flow with a name long enough to run off a chart legend " * 3
READER = "e2e-report-reader"
LONE_SURROGATE = re.compile(r"[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")


def _node(model: str, i: int) -> dict[str, Any]:
    return {
        "modelId": model,
        "content": f"answer {i}",
        "usage": {"prompt_tokens": 100, "completion_tokens": 40},
    }


def _run(flow_id: str, i: int, when: datetime) -> dict[str, Any]:
    nodes: dict[str, Any] = {"input_1": {"value": "hi"}, "model_1": _node("gpt-4o-mini", i)}
    errors: dict[str, str] | None = None
    if i < AT_MODEL_2:
        nodes["model_2"] = _node("my-private-model", i)
        errors = {"model_2": MESSAGE}
    elif i < AT_MODEL_2 + AT_MODEL_1:
        errors = {"model_1": MESSAGE}
    elif i < RUNS - 1:
        nodes["model_2"] = _node("my-private-model", i)
    else:
        errors = {"model_1": EMOJI_ERROR}
    return {
        "flow_id": flow_id,
        "status": "error" if errors else "success",
        "inputs": {"prompt": "hi"},
        "outputs": nodes,
        "node_results": nodes,
        "errors": errors,
        "execution_time": 1000 + i,
        "created_at": when.isoformat(),
    }


@pytest.fixture(scope="module")
def report(api: Api) -> dict[str, Any]:
    """A flow the reader may read, with RUNS runs over the last 20 hours (the last few within one
    second), and a failure-rate rule on it that fires."""
    flow_id = api.create_flow(NAME, access_control={"read": {"user_ids": [READER]}})
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now - timedelta(minutes=20 * i + 5) for i in range(RUNS - 3)]
    times += [now - timedelta(seconds=2, microseconds=k) for k in (1, 2, 3)]
    ids = api.batch([_run(flow_id, i, when) for i, when in enumerate(times)])
    rule = api.ok(
        api.http.post(
            "/api/v1/alerts/rules",
            json={
                "name": "report fixes failing",
                "metric": "failure_rate",
                "operator": "gt",
                "threshold": 0.2,
                "window": "1d",
                "flow_id": flow_id,
            },
        )
    )
    api.ok(api.http.post(f"/api/v1/alerts/rules/{rule['id']}/evaluate"))
    return {"flow_id": flow_id, "ids": ids}


def _format(page: Any, expression: str) -> Any:
    """Evaluate `expression` with format.js imported as `f`, in the page."""
    return page.evaluate(
        f"async () => {{ const f = await import('/static/js/format.js'); return {expression}; }}"
    )


def test_durations_round_before_splitting_into_units(page: Any) -> None:
    page.goto("/")
    cases = {
        999.6: "1.00 s",
        9996: "10.0 s",
        9995: "10.0 s",  # toFixed read 9.99 and Intl wrote 10.00: "10.00 s"
        9994: "9.99 s",
        59949: "59.9 s",
        59950: "1 min 0 s",
        59990: "1 min 0 s",
        119700: "2 min 0 s",
        3599700: "1 h 0 min",
        7199000: "2 h 0 min",
        90_000: "1 min 30 s",
        5_400_000: "1 h 30 min",
    }
    shown = _format(page, f"{list(cases)}.map((ms) => f.duration(ms))")
    assert dict(zip(cases, shown, strict=True)) == cases


def test_money_keeps_two_significant_digits_under_ten_cents(page: Any) -> None:
    page.goto("/")
    cases = {
        0.0102: "$0.010",
        0.011534: "$0.012",
        0.0149: "$0.015",
        0.0073: "$0.0073",
        0.45: "$0.45",
        4.9597: "$4.96",
    }
    shown = _format(page, f"{list(cases)}.map((x) => f.money(x))")
    assert dict(zip(cases, shown, strict=True)) == cases


def test_short_ids_and_clipped_text(page: Any) -> None:
    page.goto("/")
    # two UUIDv7 of the same millisecond: the same first 8 digits, different last 8
    a, b = "019af3c2-7d10-7abc-8def-0123456789ab", "019af3c2-7d10-7abc-8def-ba9876543210"
    assert _format(page, f"[f.shortId('{a}'), f.shortId('{b}')]") == ["456789ab", "76543210"]
    clipped = _format(page, "f.clip('E' + '😀'.repeat(60), 40)")
    assert clipped.endswith("…") and not LONE_SURROGATE.search(clipped) and len(clipped) == 40  # code points


def test_signature_link_finds_the_runs_it_counts(page: Any, shot: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto("/#/?period=24h")
    row = page.locator("#signatures-table tbody tr", has_text="model_2").filter(
        has_text="context length exceeded"
    )
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(3)).to_have_text(str(AT_MODEL_2))
    row.get_by_role("link").click()
    expect(page.locator("#search-signature_node")).to_have_value("model_2")
    expect(page.locator("#search-summary")).to_have_text(f"Showing {AT_MODEL_2} of {AT_MODEL_2} runs")
    # search by error text shows the error, its node first
    errors = page.locator('#search-table td[data-col="error"]')
    expect(errors.first).to_have_text(f"model_2: {MESSAGE}")
    shot("signature-search")
    # the same message at model_1, whose runs failing at model_2 have a model_1 too: those are
    # not its runs (a node_id filter found them)
    page.goto("/#/?period=24h")
    row = page.locator("#signatures-table tbody tr", has_text="model_1").filter(
        has_text="context length exceeded"
    )
    expect(row.locator("td").nth(3)).to_have_text(str(AT_MODEL_1))
    row.get_by_role("link").click()
    expect(page.locator("#search-summary")).to_have_text(f"Showing {AT_MODEL_1} of {AT_MODEL_1} runs")


def test_firing_alert_reads_its_operator_as_a_symbol(page: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto("/#/?period=24h")
    value = page.locator("#alerts-table tbody tr", has_text="report fixes failing").locator("td").nth(2)
    expect(value).to_contain_text("(> 20 %)")  # as the Alerts tab writes it (it said "> 20.0 %")


def test_hour_buckets_in_a_half_hour_zone_line_up_with_the_range(
    browser: Any, live: LiveApp, api: Api, report: dict, request: Any
) -> None:
    page = new_page(browser, live, timezone_id="Asia/Kolkata")
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{report['flow_id']}/analytics?range=24h&bucket=hour&tz=local")
        charts = page.locator("#charts")
        expect(page.locator('figure[data-chart="runs"]')).to_have_attribute("data-drawn", "true")
        start, end = int(charts.get_attribute("data-start")), int(charts.get_attribute("data-end"))
        assert start % 3600 == 0 and end - start == 86400, (start, end)  # the API's UTC hour grid
        assert int(charts.get_attribute("data-first-bucket")) >= start
        assert int(page.locator('figure[data-chart="runs"]').get_attribute("data-points")) <= 24
        shot("kolkata-24h")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_weeks_cover_the_range_and_the_current_bucket_is_marked_partial(
    page: Any, shot: Any, api: Api, report: dict
) -> None:
    sign_in(page, api.key)
    now = int(time.time())
    page.goto(f"/#/flows/{report['flow_id']}/analytics?range=30d&bucket=week&tz=utc")
    charts = page.locator("#charts")
    runs = page.locator('figure[data-chart="runs"]')
    expect(runs).to_have_attribute("data-drawn", "true")
    start, end = int(charts.get_attribute("data-start")), int(charts.get_attribute("data-end"))
    week = 7 * 86400
    assert start <= now - 30 * 86400 and (end - start) % week == 0 and end - week <= now < end, (start, end)
    expect(charts).to_have_attribute("data-partial", str(end - week))
    expect(runs).to_have_attribute("data-partial", str(end - week))
    expect(charts).to_contain_text("its numbers are partial")
    shot("weeks")
    page.goto(f"/#/flows/{report['flow_id']}/analytics?range=7d&bucket=day&tz=utc")
    expect(page.locator('figure[data-chart="runs"]')).to_have_attribute("data-drawn", "true")
    end = int(page.locator("#charts").get_attribute("data-end"))
    expect(page.locator('figure[data-chart="cost"]')).to_have_attribute("data-partial", str(end - 86400))


def test_a_screen_whose_code_cannot_be_fetched_offers_try_again(page: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto(f"/#/flows/{report['flow_id']}")
    expect(page.locator("#runs-summary")).to_contain_text("Showing 50 of")
    page.route("**/static/js/views/cost.js", lambda route: route.abort())  # the server is down
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cost", exact=True).click()
    panel = page.locator("#view .error-panel")
    expect(panel).to_contain_text("The server could not be reached")
    page.unroute("**/static/js/views/cost.js")  # and back
    panel.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Cost", exact=True)).to_be_visible()


def test_a_failed_section_says_it_once_and_tries_again(page: Any, shot: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto(f"/#/flows/{report['flow_id']}")
    expect(page.locator("#runs-summary")).to_have_text(f"Showing 50 of {RUNS} runs")
    page.route("**/api/v1/executions/search", lambda route: route.abort())
    page.locator("#load-more").click()
    panel = page.locator("#runs .error-panel")
    expect(panel).to_contain_text("The server could not be reached")
    assert panel.inner_text().count("could not be reached") == 1, panel.inner_text()
    shot("load-more-failed")
    page.unroute("**/api/v1/executions/search")
    panel.get_by_role("button", name="Try again").click()
    expect(page.locator("#runs-summary")).to_have_text(f"Showing {RUNS} of {RUNS} runs")
    expect(panel).to_have_count(0)

    page.route("**/reliability?*", lambda route: route.abort())
    page.goto(f"/#/flows/{report['flow_id']}/analytics")
    section = page.locator("#reliability .error-panel")
    expect(section).to_contain_text("The server could not be reached")
    page.unroute("**/reliability?*")
    section.get_by_role("button", name="Try again").click()
    expect(page.locator("#reliability .card").first).to_be_visible()


def test_a_reader_is_not_offered_alert_forms(browser: Any, live: LiveApp, report: dict, request: Any) -> None:
    page = new_page(browser, live)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, jwt(READER))
        page.goto(f"/#/flows/{report['flow_id']}/alerts")
        expect(page.locator("#alerts-readonly")).to_contain_text("Only the flow's owner")
        expect(page.locator("#new-rule")).to_have_count(0)
        expect(page.locator("#silence-form")).to_have_count(0)
        shot("reader-alerts")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_a_refused_rule_says_alerts_not_flow_access(page: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto(f"/#/flows/{report['flow_id']}/alerts")
    # the owner is not refused by the real server: this one answer is replaced
    page.route(
        "**/api/v1/alerts/rules",
        lambda route: (
            route.fulfill(status=403, json={"detail": "You do not have permission to access this flow"})
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.locator("#new-rule").click()
    page.locator("#r-name").fill("refused")
    page.locator("#r-threshold").fill("10")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#r-form-error")).to_have_text(
        "You may not manage alerts on this flow: only its owner and admins may."
    )


def test_run_ids_differ_between_runs_of_one_second(page: Any, api: Api, report: dict) -> None:
    sign_in(page, api.key)
    page.goto(f"/#/search?flow={report['flow_id']}")
    expect(page.locator("#search-summary")).to_contain_text("Showing 50 of")
    shown = page.locator("#search-table tbody tr td:first-child a").all_inner_texts()[:3]
    newest = report["ids"][-3:]
    assert sorted(shown) == sorted(i.replace("-", "")[-8:] for i in newest), (shown, newest)


def test_history_errors_on_a_phone(browser: Any, live: LiveApp, api: Api, report: dict, request: Any) -> None:
    page = new_page(browser, live, width=390, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{report['flow_id']}?error=%F0%9F%98%80")
        expect(page.locator("#runs-summary")).to_have_text("Showing 1 of 1 run")
        row = page.locator("#runs-table tbody tr").first
        cell, delete = (
            row.locator('td[data-col="error"]'),
            row.get_by_role("button", name=re.compile("^Delete")),
        )
        text = cell.inner_text()
        assert text.endswith("…") and not LONE_SURROGATE.search(text), ascii(text)
        a, b = cell.bounding_box(), delete.bounding_box()
        assert a is not None and b is not None
        overlap = (
            a["x"] < b["x"] + b["width"]
            and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"]
            and b["y"] < a["y"] + a["height"]
        )
        assert not overlap and a["x"] >= 0 and a["x"] + a["width"] <= 390, (a, b)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot("phone-errors")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_cost_nodes_per_flow_unpriced_runs_and_a_legend_that_fits(
    browser: Any, live: LiveApp, api: Api, report: dict, request: Any
) -> None:
    flow_id = report["flow_id"]
    for width in (1280, 390):
        page = new_page(browser, live, width=width)
        shot = Screens(page, f"{request.node.name}-{width}")
        try:
            sign_in(page, api.key)
            page.goto("/#/cost?range=7d")
            node = page.locator(f'#cost-node-table tr[data-group="model_1"][data-flow="{flow_id}"]')
            expect(node.locator("th")).to_have_text(f"{NAME} · model_1")
            flow = page.locator(f'#cost-flow-table tr[data-group="{flow_id}"]')
            expect(flow.locator('[data-col="unpriced"]')).to_have_text(str(AT_MODEL_2 + SUCCESSES))
            expect(flow.locator('[data-col="cost"]')).to_contain_text("≥ $")
            figure = page.locator('figure[data-chart="cost-by-flow"]')
            expect(figure).to_have_attribute("data-drawn", "true")
            box = figure.bounding_box()
            assert box is not None
            labels = figure.locator(".u-legend th")
            for i in range(labels.count()):
                label = labels.nth(i).bounding_box()
                assert (
                    label is not None
                    and box["x"] <= label["x"]
                    and label["x"] + label["width"] <= box["x"] + box["width"]
                ), (i, label, box)
            shot("cost")
            assert not page.js_errors, page.js_errors
        finally:
            page.context.close()
