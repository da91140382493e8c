"""An outside tester's dashboard findings: Search and History links whose From/Until read in the
viewer's zone (the link named none), impossible dates rolled over to other days, Search's flow
menu reading "All flows" for a flow not in the list, and the overview's points changes unsigned
(and "up 0.0 pts" in red)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, close_page, jwt, new_page, searches_sent, sign_in


def _run(flow_id: str, created: datetime, *, failed: bool = False, version: str = "v1") -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "flow_version": version,
        "status": "error" if failed else "success",
        "inputs": {"prompt": "hi"},
        "outputs": {},
        "node_results": {"model_1": {"modelId": "gpt-4o-mini", "content": "ok"}},
        "errors": {"model_1": "upstream refused"} if failed else None,
        "execution_time": 900,
        "created_at": created.isoformat(),
    }


def _wall(instant: datetime, zone: str) -> str:
    """An instant as a datetime-local value in a zone."""
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


def _open(browser: Any, live: LiveApp, request: Any, suffix: str, **kw: Any) -> tuple[Any, Screens]:
    page = new_page(browser, live, **kw)
    return page, Screens(page, f"{request.node.name}-{suffix}")


def _two_runs(api: Api, name: str) -> tuple[str, datetime]:
    """A flow with runs 1 and 4 hours ago; returns it and the instant 6 hours ago (before both)."""
    flow_id = api.create_flow(name)
    now = datetime.now(UTC).replace(microsecond=0)
    api.batch([_run(flow_id, now - timedelta(hours=1)), _run(flow_id, now - timedelta(hours=4))])
    return flow_id, now - timedelta(hours=6)


# 1. A link's times say their zone: the same runs whoever opens it


def test_a_link_with_times_finds_the_same_runs_in_every_viewers_zone(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    flow_id, since = _two_runs(api, "link-zone-shared")
    utc_link = f"/#/search?flow={flow_id}&after={_wall(since, 'UTC')}&tz=utc"
    history_link = f"/#/flows/{flow_id}?from={_wall(since, 'UTC')}&tz=utc"
    page, shot = _open(browser, live, request, "los-angeles", timezone_id="America/Los_Angeles")
    try:
        sign_in(page, api.key)
        page.evaluate("localStorage.setItem('flowhistory.tz', 'local')")  # the browser's own zone, chosen
        # read in Los Angeles time, 6 hours ago UTC was 2 hours from now: 0 runs
        page.goto(utc_link)
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page.locator('label[for="search-after"]')).to_have_text("From (UTC)")
        expect(page.locator("#search-after")).to_have_value(_wall(since, "UTC"))
        expect(page.locator("#search-zone")).to_contain_text("UTC, the time zone this link was written in")
        expect(page.locator("#search-table thead")).to_contain_text("Time (America/Los_Angeles)")
        shot("search-utc-link")
        # Search unchanged keeps the link's zone
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"[?&]tz=utc(&|$)"))
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")

        page.goto(history_link)
        expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page.locator('label[for="f-from"]')).to_have_text("From (UTC)")
        expect(page.locator("#filters-zone")).to_contain_text("UTC, the time zone this link was written in")
        shot("history-utc-link")

        # a time typed in the viewer's own zone: the link says which ("tz=America/Los_Angeles")
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator('label[for="f-from"]')).to_have_text("From (America/Los_Angeles)")
        page.locator("#f-from").fill(_wall(since, "America/Los_Angeles"))
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page).to_have_url(re.compile(r"[?&]tz=America%2FLos_Angeles(&|$)"))
        written = page.url.split("#", 1)[1]
    finally:
        close_page(page)

    # the viewer on UTC opens that link: the same 2 runs, the fields in the link's zone
    page, shot = _open(browser, live, request, "utc")
    try:
        sign_in(page, api.key)
        page.goto(f"/#{written}")
        expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page.locator('label[for="f-from"]')).to_have_text("From (America/Los_Angeles)")
        expect(page.locator("#f-from")).to_have_value(_wall(since, "America/Los_Angeles"))
        shot("history-los-angeles-link")
        # a zone 9 hours ahead, read as UTC, was 3 hours from now
        page.goto(f"/#/search?flow={flow_id}&after={_wall(since, 'Asia/Tokyo')}&tz=Asia/Tokyo")
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page.locator('label[for="search-after"]')).to_have_text("From (Asia/Tokyo)")
        # Search's own form writes its zone too
        page.goto(f"/#/search?flow={flow_id}")
        page.locator("#search-after").fill(_wall(since, "UTC"))
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page).to_have_url(re.compile(r"[?&]tz=utc(&|$)"))
    finally:
        close_page(page)


def test_a_link_with_an_unknown_zone_says_so(page: Any, shot: Any, api: Api) -> None:
    flow_id, since = _two_runs(api, "link-zone-unknown")
    sent = searches_sent(page)
    sign_in(page, api.key)
    page.goto(f"/#/search?flow={flow_id}&after={_wall(since, 'UTC')}&tz=Mars/Olympus_Mons")
    expect(page.locator("#search-results")).to_contain_text(
        'Time zone: "Mars/Olympus_Mons" is not a time zone'
    )
    page.goto(f"/#/flows/{flow_id}?from={_wall(since, 'UTC')}&tz=local")
    expect(page.locator("#runs")).to_contain_text('Time zone: "local" is not a time zone')
    shot("unknown-zone")
    assert sent == []


def test_signature_links_name_their_zone(page: Any, shot: Any, api: Api) -> None:
    flow_id = api.create_flow("link-zone-signature")
    now = datetime.now(UTC)
    api.batch([_run(flow_id, now - timedelta(hours=2 + i), failed=True) for i in range(3)])
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/analytics")
    link = page.locator("#failures-table tbody a").first
    expect(link).to_have_attribute("href", re.compile(r"&tz=utc$"))
    link.click()
    expect(page.locator("#search-summary")).to_have_text("Showing 3 of 3 runs")
    shot("signature")


# 2. An impossible date is refused, never rolled over to another day


def test_impossible_dates_in_links_are_refused(browser: Any, live: LiveApp, api: Api, request: Any) -> None:
    flow_id, _ = _two_runs(api, "impossible-dates")
    page, shot = _open(browser, live, request, "utc")
    sent = searches_sent(page)
    try:
        sign_in(page, api.key)
        cases = [
            (
                f"/#/flows/{flow_id}?to=2026-02-30T10:00:00",
                "#runs",
                'Until: "2026-02-30T10:00:00" is not a date and time',
            ),
            (
                f"/#/flows/{flow_id}?from=2026-13-45T99:00",
                "#runs",
                'From: "2026-13-45T99:00" is not a date and time',
            ),
            (
                f"/#/flows/{flow_id}?from=2027-02-29T00:00",
                "#runs",
                'From: "2027-02-29T00:00" is not a date and time',
            ),
            (
                f"/#/flows/{flow_id}?to=2026-04-31T10:00&tz=utc",
                "#runs",
                'Until: "2026-04-31T10:00" is not a date and time',
            ),
            (
                f"/#/search?flow={flow_id}&before=2026-02-30T10:00:00",
                "#search-results",
                'Until: "2026-02-30T10:00:00" is not a date and time',
            ),
            (
                f"/#/search?flow={flow_id}&after=2026-12-07T24:00",
                "#search-results",
                'From: "2026-12-07T24:00" is not a date and time',
            ),
            (
                f"/#/search?flow={flow_id}&after=2026-12-07T10:60",
                "#search-results",
                'From: "2026-12-07T10:60" is not a date and time',
            ),
        ]
        for link, where, message in cases:
            page.goto(link)
            expect(page.locator(where)).to_contain_text(message)
        shot("refused")
        assert sent == []  # no search with a filter the fields could not show
        # a leap day is a day
        page.goto(f"/#/search?flow={flow_id}&before=2028-02-29T00:00:00&tz=utc")
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        assert '"before_":"2028-02-29T00:00:00.000Z"' in sent[-1].replace(" ", "")
    finally:
        close_page(page)


def test_a_wall_time_the_clocks_skip_is_refused(browser: Any, live: LiveApp, api: Api, request: Any) -> None:
    flow_id, _ = _two_runs(api, "dst-gap")
    page, shot = _open(browser, live, request, "los-angeles", timezone_id="America/Los_Angeles")
    sent = searches_sent(page)
    try:
        sign_in(page, api.key)
        page.evaluate("localStorage.setItem('flowhistory.tz', 'local')")
        page.goto(f"/#/search?flow={flow_id}&after=2026-03-08T02:30:00")  # 02:00 -> 03:00 in Los Angeles
        expect(page.locator("#search-results")).to_contain_text(
            'From: "2026-03-08T02:30:00" does not exist in America/Los_Angeles'
        )
        page.goto(f"/#/flows/{flow_id}?to=2026-03-29T02:30&tz=Europe/Paris")  # 02:00 -> 03:00 in Paris
        expect(page.locator("#runs")).to_contain_text(
            'Until: "2026-03-29T02:30" does not exist in Europe/Paris'
        )
        shot("gap")
        assert sent == []
        # either side of the gap, and the hour Paris has twice (its first), read as they should
        page.goto(f"/#/search?flow={flow_id}&after=2026-03-08T01:59:59&before=2026-03-08T03:00:00")
        expect(page.locator("#search-summary")).to_have_text("Showing 0 of 0 runs")
        body = sent[-1].replace(" ", "")
        assert '"after_":"2026-03-08T09:59:59.000Z"' in body
        assert '"before_":"2026-03-08T10:00:00.000Z"' in body
        page.goto(f"/#/search?flow={flow_id}&after=2026-10-25T02:30:00&tz=Europe/Paris")
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        assert '"after_":"2026-10-25T00:30:00.000Z"' in sent[-1].replace(" ", "")
    finally:
        close_page(page)


# 3. Search's flow menu keeps the link's flow, even one not in the list


def test_search_keeps_a_flow_it_cannot_list(browser: Any, live: LiveApp, api: Api, request: Any) -> None:
    hidden = api.create_flow("hidden-from-viewer-secret-name")
    api.batch([_run(hidden, datetime.now(UTC) - timedelta(hours=1))])
    page, shot = _open(browser, live, request, "viewer")
    try:
        sign_in(page, jwt("link-viewer"))
        page.goto(f"/#/search?flow={hidden}")
        expect(page.locator("#search-summary")).to_have_text("Showing 0 of 0 runs")
        menu = page.locator("#search-flow")
        expect(menu).to_have_value(hidden)
        expect(menu.locator("option:checked")).to_have_text(f"{hidden} (0)")
        expect(menu).not_to_contain_text("secret-name")
        shot("unknown-flow")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(f"flow={hidden}"))
        expect(page.locator("#search-summary")).to_have_text("Showing 0 of 0 runs")
    finally:
        close_page(page)


# 4. The overview's points changes read as Analytics's: signed, and 0.0 as no change


def test_points_changes_are_signed_as_on_analytics(page: Any, shot: Any, api: Api) -> None:
    sign_in(page, api.key)
    said = page.evaluate(
        """() => import("/static/js/format.js").then((f) =>
            [f.pointsChange(0.318), f.pointsChange(-0.04), f.pointsChange(0.0004), f.pointsChange(-0.0004)])"""
    )
    assert said == ["+31.8 pts", "\u22124.0 pts", "0.0 pts", "0.0 pts"]

    regressed = api.create_flow("overview-points-regressed")
    start = datetime.now(UTC) - timedelta(days=3)
    runs = [_run(regressed, start + timedelta(minutes=i), failed=i < 5) for i in range(100)]
    runs += [
        _run(regressed, start + timedelta(days=1, minutes=i), version="v2", failed=i < 30) for i in range(100)
    ]
    api.batch(runs)
    page.goto("/#/")
    row = page.locator("#regressions-table tbody tr", has_text="overview-points-regressed")
    expect(row.locator("td").nth(3)).to_have_text("+25.0 pts")  # as Analytics says it
    shot("regression")


def test_a_failure_rate_change_that_rounds_to_zero_is_none(page: Any, shot: Any, api: Api) -> None:
    # 11 of 40 failed this week, 14 of 51 the week before: 27.5 % against 27.45 %, +0.049 points
    steady = api.create_flow("overview-points-steady")
    now = datetime.now(UTC)
    runs = [_run(steady, now - timedelta(hours=1 + 3 * i), failed=i < 11) for i in range(40)]
    runs += [_run(steady, now - timedelta(days=8, hours=2 * i), failed=i < 14) for i in range(51)]
    api.batch(runs)

    sign_in(page, api.key)
    page.goto("/#/")
    delta = page.locator(f'#flows-table tr[data-flow="{steady}"] [data-col="failure_rate"] .delta')
    expect(delta).to_have_text("0.0 pts")  # no arrow, no "up"
    expect(delta).not_to_have_class(re.compile("delta-bad"))
    shot("overview")


# 5. Second findings: a signature link in the hour clocks go back, zone names kept as given,
# History's refusals without a status, the p-value in the locale, hand-written links


def test_a_signature_link_in_an_hour_that_happens_twice_finds_its_rows_runs(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    # a run every 10 min from 2026-10-24 22:00 UTC; Paris's clocks go back at 01:00 UTC on
    # 25 October, so the 24 h range from 01:00 UTC starts at the second 02:00 of that night
    flow_id = api.create_flow("signature-repeated-hour")
    first = datetime(2026, 10, 24, 22, tzinfo=UTC)
    runs = [_run(flow_id, first + timedelta(minutes=10 * i), failed=True) for i in range(156)]
    for run in runs:
        run["errors"] = {"model_1": "boom"}
    api.batch(runs)
    page, shot = _open(browser, live, request, "paris", timezone_id="Europe/Paris")
    try:
        page.clock.install(time=datetime(2026, 10, 26, 0, 30, tzinfo=UTC))
        sign_in(page, api.key)
        page.evaluate("localStorage.setItem('flowhistory.tz', 'local')")
        page.goto(f"/#/flows/{flow_id}/analytics?range=24h&bucket=hour")
        row = page.locator("#failures-table tbody tr").first
        expect(row.locator("td").nth(2)).to_have_text("138")
        link = row.locator("a[href*=search]")
        expect(link).to_have_attribute("href", re.compile(r"after=2026-10-25T01%3A00%3A00&.*&tz=utc$"))
        link.click()
        expect(page.locator("#search-summary")).to_have_text("Showing 50 of 138 runs")
        expect(page.locator('label[for="search-after"]')).to_have_text("From (UTC)")
        shot("search")
    finally:
        close_page(page)


def test_a_links_zone_is_shown_as_the_link_gave_it(page: Any, shot: Any, api: Api) -> None:
    flow_id, since = _two_runs(api, "link-zone-as-given")
    sent = searches_sent(page)
    sign_in(page, api.key)
    # Chromium's Intl names these Asia/Calcutta and America/Panama
    for given, label in [("Asia/Kolkata", "Asia/Kolkata"), ("EST", "EST"), ("asia/tokyo", "Asia/Tokyo")]:
        page.goto(f"/#/search?flow={flow_id}&after={_wall(since, label)}&tz={given}")
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
        expect(page.locator('label[for="search-after"]')).to_have_text(f"From ({label})")
        expect(page.locator("#search-zone")).to_contain_text(f"From and Until are in {label},")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(f"[?&]tz={label.replace('/', '%2F')}(&|$)"))
        expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    assert f'"after_":"{since.strftime("%Y-%m-%dT%H:%M:%S")}.000Z"' in sent[-1].replace(" ", "")
    page.goto(f"/#/flows/{flow_id}?from={_wall(since, 'Asia/Kolkata')}&tz=Asia/Kolkata")
    expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
    expect(page.locator('label[for="f-from"]')).to_have_text("From (Asia/Kolkata)")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]tz=Asia%2FKolkata(&|$)"))
    shot("as-given")


def test_history_refuses_a_link_in_searchs_words_without_a_status(page: Any, shot: Any, api: Api) -> None:
    flow_id, _ = _two_runs(api, "history-refusal-words")
    sent = searches_sent(page)
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}?from=2026-02-30T00:00:00")
    message = 'From: "2026-02-30T00:00:00" is not a date and time'
    for where in ["#runs", "#stats"]:
        panel = page.locator(f"{where} .error-panel")
        expect(panel.locator(".error-detail")).to_have_text(message)  # not "422: From: ..."
        expect(panel.get_by_role("button", name="Try again")).to_have_count(0)
    page.goto(f"/#/search?flow={flow_id}&after=2026-02-30T00:00:00")
    expect(page.locator("#search-results .error-detail")).to_have_text(message)
    shot("refused")
    assert sent == []


def test_the_regressions_p_value_reads_in_the_locale(
    browser: Any, live: LiveApp, api: Api, request: Any
) -> None:
    regressed = api.create_flow("overview-p-value-locale")
    start = datetime.now(UTC) - timedelta(days=3)
    runs = [_run(regressed, start + timedelta(minutes=i), failed=i < 5) for i in range(100)]
    runs += [
        _run(regressed, start + timedelta(days=1, minutes=i), version="v2", failed=i < 30) for i in range(100)
    ]
    api.batch(runs)
    page, shot = _open(browser, live, request, "de", locale="de-DE")
    try:
        sign_in(page, api.key)
        said = page.evaluate(
            """() => import("/static/js/format.js").then((f) =>
                [f.pValue(0.032), f.pValue(0.0012), f.pValue(0.00000661), f.pValue(null), f.pValueExact(0.00000661)])"""
        )
        assert said == ["0,032", "0,0012", "< 0,001", "—", "6,6E-6"]
        page.goto("/#/")
        row = page.locator("#regressions-table tbody tr", has_text="overview-p-value-locale")
        expect(row.locator("td").nth(2)).to_have_text("30,0 %")
        expect(row.locator("td").nth(4)).to_have_text("< 0,001")
        expect(row.locator("td").nth(4)).to_have_attribute("title", re.compile(r"^\d,\dE-\d+$"))
        shot("regression")
    finally:
        close_page(page)


def test_hand_written_links_read_as_their_fields_show_them(page: Any, shot: Any, api: Api) -> None:
    flow_id, since = _two_runs(api, "hand-written-links")
    sent = searches_sent(page)
    sign_in(page, api.key)
    # a literal + in tz decodes to a space: read back as +
    page.goto(f"/#/search?flow={flow_id}&after={_wall(since, 'Etc/GMT+5')}&tz=Etc/GMT+5")
    expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    expect(page.locator('label[for="search-after"]')).to_have_text("From (Etc/GMT+5)")
    page.goto(f"/#/flows/{flow_id}?to=2026-03-01T10:00&tz=Etc/GMT+5")
    expect(page.locator("#runs")).to_contain_text("No runs match these filters")
    expect(page.locator('label[for="f-to"]')).to_have_text("Until (Etc/GMT+5)")
    assert '"before_":"2026-03-01T15:00:00.000Z"' in sent[-1].replace(" ", "")
    # a space for the T, and milliseconds, as the field shows them
    page.goto(f"/#/search?flow={flow_id}&after=2026-03-01 10:00&tz=utc")
    expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    assert '"after_":"2026-03-01T10:00:00.000Z"' in sent[-1].replace(" ", "")
    page.goto(f"/#/flows/{flow_id}?from=2026-03-01%2010:00:05&tz=utc")
    expect(page.locator("#runs-summary")).to_have_text("Showing 2 of 2 runs")
    assert '"after_":"2026-03-01T10:00:05.000Z"' in sent[-1].replace(" ", "")
    page.goto(f"/#/search?flow={flow_id}&after=2026-03-01T10:00:00.999&tz=utc")
    expect(page.locator("#search-summary")).to_have_text("Showing 2 of 2 runs")
    expect(page.locator("#search-after")).to_have_value("2026-03-01T10:00:00.999")
    assert '"after_":"2026-03-01T10:00:00.999Z"' in sent[-1].replace(" ", "")
    shot("hand-written")
