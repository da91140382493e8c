"""The history screen (issue 14 item 13): stat cards that follow the filters, the error column,
version / model / user filters offered from the runs, node labels from the flow's definition,
at desktop and phone (390 px) widths; and the retention screen's dates in the one date format.
Every number on screen is checked against the API's answer for the same filter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, Screens, new_page, sign_in

PHONE = 390
NODES = [
    {"id": "input_1739905519870_a1b2c3d4e", "type": "input", "data": {"label": "Customer question"}},
    {"id": "model_1739905519876_k3j9x2abq", "type": "model", "data": {"label": "Draft answer"}},
    {"id": "model_1739905519999_zz9y8x7wv", "type": "model", "data": {"name": "Fact checker"}},
    {"id": "output_1739905520000_q1w2e3r4t", "type": "output", "data": {}},
]
DRAFT, CHECK, OUT = NODES[1]["id"], NODES[2]["id"], NODES[3]["id"]
LONG_ERROR = (
    "the model provider answered 503 Service Unavailable: " + "upstream overloaded, retry later; " * 6
)


def _labelled_flow(api: Api, name: str) -> str:
    body = {
        "name": name,
        "nodes": NODES,
        "edges": [
            {"source": NODES[0]["id"], "target": DRAFT},
            {"source": DRAFT, "target": CHECK},
            {"source": CHECK, "target": OUT},
        ],
        "access_control": {},
    }
    return str(api.ok(api.http.post("/api/v1/flows/create", json=body))["id"])


def _runs(flow_id: str) -> list[dict[str, Any]]:
    """16 runs: two versions, two models, two users, errors on named and unnamed nodes."""
    now = datetime.now(UTC)
    runs = []
    for i in range(16):
        status = "error" if i % 4 == 1 else "aborted" if i == 6 else "success"
        model = "gpt-4o" if i % 2 else "claude-3-5-sonnet"
        results = {
            NODES[0]["id"]: {"value": "hello"},
            DRAFT: {
                "modelId": model,
                "content": f"answer {i}",
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            },
        }
        errors = None
        if status == "error":
            errors = (
                {DRAFT: LONG_ERROR}
                if i == 1
                else {CHECK: {"message": "fact check failed", "code": 422}}
                if i == 5
                else {"global": "flow aborted by the runner"}
                if i == 9
                else {OUT: "output node crashed"}
            )
        runs.append(
            {
                "flow_id": flow_id,
                "status": status,
                "node_results": results,
                "outputs": results,
                "errors": errors,
                "execution_time": 300 + 137 * i,
                "created_at": (now - timedelta(hours=2 * i + 1)).isoformat(),
                "flow_version": "version-2" if i < 8 else "version-1",
                "user_id": "alice" if i % 3 else "bob",
            }
        )
    return runs


@pytest.fixture(scope="module")
def labelled(api: Api) -> dict[str, Any]:
    flow_id = _labelled_flow(api, "labelled-support-flow")
    runs = _runs(flow_id)
    ids = api.batch(runs)
    return {"flow_id": flow_id, "runs": runs, "ids": ids}


def _card(page: Any, key: str) -> Any:
    return page.locator(f'[data-stat="{key}"] .value')


def _expect_cards(page: Any, stats: dict[str, Any]) -> None:
    """The cards show exactly the API's stats for the same filter."""
    total = stats["total_executions"]
    expect(_card(page, "total")).to_have_text(str(total))
    rate = f"{stats['success_count'] / total * 100:.1f} %" if total else "—"
    expect(_card(page, "success_rate")).to_have_text(rate)
    expect(_card(page, "errors")).to_have_text(f"{stats['error_count']} / {stats['aborted_count']}")
    avg = stats["avg_execution_time"]
    expect(_card(page, "avg")).to_have_text(
        (f"{avg:.0f} ms" if avg < 1000 else f"{avg / 1000:.2f} s") if total else "—"
    )


def _stats(api: Api, flow_id: str, **params: Any) -> dict[str, Any]:
    return api.get(f"/api/v1/flows/{flow_id}/executions/stats", **params)


def _hash_params(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).fragment.partition("?")[2])


def test_cards_follow_the_filters_and_the_choices_come_from_the_runs(
    page: Any, shot: Any, api: Api, labelled: dict
) -> None:
    flow_id, runs = labelled["flow_id"], labelled["runs"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator("#runs-summary")).to_have_text("Showing 16 of 16 runs")
    everything = _stats(api, flow_id)
    _expect_cards(page, everything)
    expect(page.locator("#stats")).to_have_attribute("data-filtered", "false")

    # the choices are what the runs have, with their counts
    facets = api.get(f"/api/v1/flows/{flow_id}/executions/facets")
    for select, field in (("#f-version", "flow_version"), ("#f-model", "model"), ("#f-user", "user_id")):
        values = page.locator(f"{select} option").evaluate_all("os => os.map(o => o.value)")
        assert values == ["", *[v["value"] for v in facets[field]["values"]]], (select, values)
    assert {v["value"] for v in facets["model"]["values"]} == {"gpt-4o", "claude-3-5-sonnet"}
    shot("unfiltered")

    # version: the cards change, and equal the API's stats for that version
    page.locator("#f-version").select_option("version-1")
    page.get_by_role("button", name="Apply").click()
    v1 = _stats(api, flow_id, flow_version="version-1")
    assert v1["total_executions"] == sum(r["flow_version"] == "version-1" for r in runs) == 8
    expect(page.locator("#runs-summary")).to_have_text("Showing 8 of 8 runs")
    expect(page.locator("#stats")).to_have_attribute("data-filtered", "true")
    _expect_cards(page, v1)
    assert _card(page, "total").inner_text() != str(everything["total_executions"])

    # status + model + user together
    page.get_by_label("Status").select_option("success")
    page.locator("#f-model").select_option("claude-3-5-sonnet")
    page.locator("#f-user").select_option("alice")
    page.get_by_role("button", name="Apply").click()
    kept = [
        r
        for r in runs
        if r["flow_version"] == "version-1"
        and r["status"] == "success"
        and r["node_results"][DRAFT]["modelId"] == "claude-3-5-sonnet"
        and r["user_id"] == "alice"
    ]
    both = _stats(
        api, flow_id, flow_version="version-1", status="success", model="claude-3-5-sonnet", user_id="alice"
    )
    assert both["total_executions"] == len(kept) > 0
    expect(page.locator("#runs-summary")).to_have_text(f"Showing {len(kept)} of {len(kept)} runs")
    _expect_cards(page, both)
    # p95 and cost follow too: the metrics API over the same filter
    expect(_card(page, "p95")).not_to_have_text("—")
    assert _hash_params(page) == {
        "status": ["success"],
        "version": ["version-1"],
        "model": ["claude-3-5-sonnet"],
        "user": ["alice"],
    }
    shot("filtered-version-status-model-user")

    # the filters are in the URL: a reload keeps them and the cards
    page.reload()
    expect(page.locator("#f-model")).to_have_value("claude-3-5-sonnet")
    expect(page.locator("#f-user")).to_have_value("alice")
    _expect_cards(page, both)

    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#runs-summary")).to_have_text("Showing 16 of 16 runs")
    _expect_cards(page, everything)


def test_error_column_shows_the_first_error_with_the_node_label(
    page: Any, shot: Any, api: Api, labelled: dict
) -> None:
    flow_id, ids = labelled["flow_id"], labelled["ids"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}")
    expect(page.locator("#runs-summary")).to_have_text("Showing 16 of 16 runs")
    expect(page.locator("#runs-table thead")).to_contain_text("Error")
    cell = lambda i: page.locator(f'#runs-table tr[data-id="{ids[i]}"] td[data-col="error"]')  # noqa: E731

    long_cell = cell(1)  # shortened, the whole message (and the node's id) in its tooltip
    text = long_cell.inner_text()
    assert (
        text.startswith("Draft answer: the model provider answered 503")
        and text.endswith("…")
        and len(text) == 80
    )
    assert long_cell.get_attribute("title") == f"Draft answer ({DRAFT}): {LONG_ERROR}"
    expect(cell(5)).to_have_text("Fact checker: fact check failed")  # a message inside an object
    expect(cell(9)).to_have_text("flow aborted by the runner")  # a run-level error names no node
    expect(cell(13)).to_have_text(f"{OUT}: output node crashed")  # a node without a name: its id
    for i in (0, 2, 6):  # success and aborted runs without errors: empty
        expect(cell(i)).to_have_text("")
    shot("error-column")


def test_run_detail_names_nodes_by_their_labels(page: Any, shot: Any, api: Api, labelled: dict) -> None:
    flow_id, ids = labelled["flow_id"], labelled["ids"]
    sign_in(page, api.key)
    page.goto(f"/#/flows/{flow_id}/runs/{ids[5]}")
    expect(page.locator("#run-summary")).to_be_visible()
    header = page.locator(f'#nodes article[data-node="{DRAFT}"] header .node-label')
    expect(header).to_have_text("Draft answer")
    expect(header).to_have_attribute("title", DRAFT)
    expect(page.locator(f'#run-errors [data-error-key="{CHECK}"] .node-label')).to_have_text("Fact checker")
    expect(page.locator(f'#timeline .tl-row[data-node="{DRAFT}"]')).to_contain_text("Draft answer")
    expect(page.locator(f'#timeline .tl-row[data-node="{OUT}"] .node-label')).to_have_text(
        OUT
    )  # no label: the id
    expect(page.locator("#nodes")).not_to_contain_text(DRAFT)  # the id is in tooltips only
    shot("detail-labels")


def test_compare_names_nodes_by_their_labels(page: Any, shot: Any, api: Api, labelled: dict) -> None:
    ids = labelled["ids"]
    sign_in(page, api.key)
    page.goto(f"/#/compare/{ids[1]}/{ids[5]}")
    row = page.locator(f'#compare-nodes tr[data-node="{DRAFT}"] th .node-label')
    expect(row).to_have_text("Draft answer")
    expect(row).to_have_attribute("title", DRAFT)
    expect(page.locator("#compare-nodes tbody")).not_to_contain_text(DRAFT)  # the id is in tooltips only
    shot("compare-labels")


def test_phone_cards_filters_error_column_and_reachable_buttons(
    browser: Any, live: LiveApp, api: Api, labelled: dict, request: Any
) -> None:
    flow_id, ids = labelled["flow_id"], labelled["ids"]
    page = new_page(browser, live, width=PHONE, height=844)
    shot = Screens(page, request.node.name)
    try:
        sign_in(page, api.key)
        page.goto(f"/#/flows/{flow_id}")
        expect(page.locator("#runs-summary")).to_have_text("Showing 16 of 16 runs")
        shot("phone-history", full_page=True)
        page.locator("#f-model").select_option("gpt-4o")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#runs-summary")).to_have_text("Showing 8 of 8 runs")
        _expect_cards(page, _stats(api, flow_id, model="gpt-4o"))
        error_cell = page.locator(f'#runs-table tr[data-id="{ids[1]}"] td[data-col="error"]')
        expect(error_cell).to_be_visible()
        assert error_cell.inner_text().startswith("Draft answer:")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
        buttons = page.locator("#runs-table tbody button")
        assert buttons.count() == 8
        for i in range(buttons.count()):
            b = buttons.nth(i)
            b.scroll_into_view_if_needed()
            box = b.bounding_box()
            wrap = b.evaluate(
                "b => { const r = b.closest('.table-wrap').getBoundingClientRect(); return [r.left, r.right]; }"
            )
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE, box
            assert wrap[0] - 0.5 <= box["x"] and box["x"] + box["width"] <= wrap[1] + 0.5, (box, wrap)
        # each run is a card: the Delete button on screen, the error on its own line under it,
        # whole, never covered by the button
        first = buttons.first.bounding_box()
        assert first is not None and first["x"] + first["width"] <= PHONE, first
        shot("phone-filtered", full_page=True)
        row = page.locator(f'#runs-table tr[data-id="{ids[1]}"]')
        cell_box, delete_box = error_cell.bounding_box(), row.locator("button").bounding_box()
        assert cell_box is not None and delete_box is not None
        assert cell_box["x"] >= 0 and cell_box["x"] + cell_box["width"] <= PHONE, cell_box
        assert cell_box["y"] >= delete_box["y"] + delete_box["height"] - 1, (cell_box, delete_box)
        shot("phone-error-column", full_page=False)
        page.goto(f"/#/flows/{flow_id}/runs/{ids[1]}")
        expect(page.locator(f'#nodes article[data-node="{DRAFT}"] header .node-label')).to_have_text(
            "Draft answer"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
        shot("phone-detail", full_page=True)
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_retention_passes_use_the_shared_date_format(page: Any, shot: Any, api: Api, labelled: dict) -> None:
    api.ok(api.http.post("/api/v1/retention/run"))
    [latest] = api.get("/api/v1/retention/runs", limit=1)
    sign_in(page, api.key)
    page.goto(f"/#/flows/{labelled['flow_id']}/retention")
    cell = page.locator("#passes-table tbody tr").first.locator("td").first
    expect(cell).to_have_attribute("data-started", latest["started_at"])
    # format.js timestamp() in en-GB, UTC: "06 Dec 2026, 04:05:09"
    started = datetime.fromisoformat(latest["started_at"].replace("Z", "+00:00")).astimezone(UTC)
    expect(cell).to_have_text(started.strftime("%d %b %Y, %H:%M:%S"))
    assert re.fullmatch(r"\d\d [A-Z][a-z]{2} \d{4}, \d\d:\d\d:\d\d", cell.inner_text())
    shot("retention-dates")
