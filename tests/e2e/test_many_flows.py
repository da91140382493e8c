"""The overview of more flows than one metrics answer holds (100 groups): every flow with runs
shows them. Flows past the 100 busiest showed "No runs 0" beside their runs, sorted last and were
left out of what needs attention. On a server of its own: the shared one's flows would change
which are the busiest."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from analytics.core.config import Settings
from tests.e2e.conftest import Api, LiveApp, new_page, sign_in
from tests.factories import SECRET
from tests.live_server import free_port

FLOWS = 104


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, Api]]:
    folder: Path = tmp_path_factory.mktemp("many-flows")
    settings = Settings(
        db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=free_port(), scheduler_enabled=False
    )
    live = LiveApp(settings).start()
    api = Api(live.url, settings.admin_key_file.read_text().strip())
    try:
        yield live, api
    finally:
        api.http.close()
        live.stop()


def test_every_flow_with_runs_shows_them_past_the_hundred_busiest(
    browser: Any, crowded: tuple[LiveApp, Api]
) -> None:
    live, api = crowded
    ids = [api.create_flow(f"many {i:03d}") for i in range(FLOWS)]
    hour_ago = int(time.time()) - 3600
    # one run each, two for the last flow and its failure: it ranks first, the rest tie on one run
    runs = [{"flow_id": f, "status": "success", "execution_time": 10, "created_at": hour_ago} for f in ids]
    runs.append({"flow_id": ids[-1], "status": "error", "execution_time": 10, "created_at": hour_ago})
    api.batch(runs)
    page = new_page(browser, live)
    try:
        sign_in(page, api.key)
        page.goto("/#/?period=24h&sort=name&dir=asc")
        expect(page.locator("tr[data-flow]")).to_have_count(FLOWS)
        cells = page.locator('tr[data-flow] td[data-col="runs"]')
        shown = {
            flow: page.locator(f'tr[data-flow="{flow}"] td[data-col="runs"]').inner_text().split()[0]
            for flow in ids
        }
        assert cells.count() == FLOWS
        assert {f: n for f, n in shown.items() if n != "1"} == {ids[-1]: "2"}
        expect(page.get_by_text("No runs")).to_have_count(0)
        # the period chosen, not the partial buckets counted ("over 25 hours" for 24)
        spark = page.locator(f'tr[data-flow="{ids[-1]}"] svg.sparkline')
        expect(spark).to_have_attribute("aria-label", "2 runs, 1 failed, per hour over the last 24 hours")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()
