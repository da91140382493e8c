"""`filter.error.contains_` matches the text of the error messages, never the JSON around them.

Every shape `errors` takes is stored, then every needle is asked through search, count, metrics
and downloads (library and HTTP); each answer is compared with plain Python over the inserted
runs: the string values found anywhere in `errors`, lower-cased, containing the lower-cased
needle. Keys (`global`, node ids), numbers, booleans and the JSON's quotes and escapes never match.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analytics.access.permissions import Viewer
from analytics.core.batch_formats import Format
from analytics.history import ingest
from analytics.history.download import download_executions
from analytics.history.filters import ExecutionFilter
from analytics.history.search import count_executions, search_executions
from analytics.trends.metrics import MetricsQuery, metrics
from tests.factories import World, bearer, open_world

BASE = datetime(2026, 4, 1, tzinfo=UTC)
NODE_A = "model_1739905519876_k3j9x2abq"
NODE_B = "tool_1739905519877_zz9y8x7w"

# every shape the peer's client or an importer sends; none of the texts names a key or a node id
SHAPES: list[dict[str, Any] | None] = [
    None,
    {},
    {"global": 'Tool "web_search" failed'},
    {NODE_A: "Back\\slash in C:\\tmp at 100% done_now"},
    {NODE_B: {"message": "Rate limit Ünïcödé 日本語 reached", "code": 429}},
    {NODE_A: ["first failure", {"error": {"message": "deep cause"}}]},
    {NODE_B: {"error": "nested plain"}},
    {NODE_A: None},
    {"global": "line\nbreak and \ttab"},
    {NODE_A: 'say "hi" \\ bye', "global": "two faults"},
    {NODE_B: {"message": "x marks", "retryable": True, "attempts": 3, "detail": None}},
    {"global": ""},
    {NODE_A: {"message": {"text": "Inner TEXT"}}, NODE_B: [[["very deep"]]]},
    # a final sigma: DuckDB lowers a capital sigma to the medial one, a typed word ends in the final
    {"global": "ΣΊΣΥΦΟΣ failed"},
    {NODE_A: "σίσυφος failed"},
]

NEEDLES = [
    '"web_search"',
    'tool "web_search" failed',
    '"',
    '\\"',
    "\\slash",
    "C:\\tmp",
    "\\",
    "\\\\",
    "100%",
    "%",
    "_",
    "done_now",
    "ünïcödé 日本語",
    "日本",
    "ÜNÏCÖDÉ",
    "RATE LIMIT",
    "global",
    "GLOBAL",
    NODE_A,
    NODE_B,
    "model_",
    "message",
    "code",
    "429",
    "error",
    "true",
    "null",
    "3",
    "line\nbreak",
    "\n",
    "\\n",
    "\t",
    "deep cause",
    "very deep",
    "inner text",
    "text",
    "first",
    "{",
    ":",
    '":"',
    "x",
    "two faults",
    'Say "HI" \\ BYE',
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "Σίσυφος",
]


def texts(value: Any) -> Iterator[str]:
    """The independent definition: every string value in the JSON, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from texts(v)


def fold(text: str) -> str:
    """Case folded as a reader expects: any sigma one (Python's `lower` ends a word in the final)."""
    return text.lower().replace("\u03c2", "\u03c3")


def expected_ids(rows: list[dict[str, Any]], needle: str) -> list[str]:
    hits = [r for r in rows if any(fold(needle) in fold(t) for t in texts(r["errors"]))]
    return [r["id"] for r in sorted(hits, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, list[dict[str, Any]]]]:
    for world in open_world(tmp_path_factory.mktemp("errfilter")):
        items = []
        for i, errors in enumerate(SHAPES * 2):
            items.append(
                {
                    "flow_id": world.shared if i % 2 else world.public,
                    "status": "success" if errors is None else ("error" if i % 3 else "aborted"),
                    "execution_time": 100 + i,
                    "created_at": (BASE + timedelta(hours=5 * i)).isoformat(),
                    "user_id": "owner",
                    "node_results": {NODE_A: {"modelId": "gpt-4o", "0": "x"}},
                    "errors": errors,
                }
            )
        results = ingest.save_executions(world.ctx, Viewer("admin", "admin"), items)
        rows = []
        for r, item in zip(results, items, strict=True):
            assert r.status == "stored", r
            rows.append({**item, "id": r.id, "created_at": datetime.fromisoformat(item["created_at"])})
        yield world, rows


def test_the_shapes_are_what_the_tests_claim(seeded: Any) -> None:
    """Guards the oracle: keys and JSON syntax are not in any message, so a match on them is wrong."""
    _, rows = seeded
    all_texts = [t.lower() for r in rows for t in texts(r["errors"])]
    for key in ("global", NODE_A.lower(), NODE_B.lower(), "message", "code", "429", "true", "null", '":"'):
        assert not any(key in t for t in all_texts), key
    assert expected_ids(rows, '"web_search"') and expected_ids(rows, "very deep")


@pytest.mark.parametrize("needle", NEEDLES)
def test_search_and_count_match_the_messages_only(seeded: Any, needle: str) -> None:
    world, rows = seeded
    want = expected_ids(rows, needle)
    flt = ExecutionFilter.model_validate({"error": {"contains_": needle}})
    admin = Viewer("admin", "admin")
    assert count_executions(world.ctx, admin, filter=flt) == len(want)
    page = search_executions(world.ctx, admin, filter=flt, limit=500)
    assert [h.row.id for h in page.items] == want and page.total == len(want)
    body = {"filter": {"error": {"contains_": needle}}, "limit": 500}
    r = world.client.post("/api/v1/executions/search", json=body, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == want and r.json()["total"] == len(want)
    c = world.client.post(
        "/api/v1/executions/count", json={"filter": body["filter"]}, headers=bearer("admin")
    )
    assert c.json() == {"count": len(want)}


@pytest.mark.parametrize("needle", ['"web_search"', "global", NODE_A, "ünïcödé", "%", "\\", "very deep"])
def test_metrics_count_the_same_runs(seeded: Any, needle: str) -> None:
    world, rows = seeded
    want = set(expected_ids(rows, needle))
    statuses = {r["id"]: r["status"] for r in rows}
    span = {"start": BASE.isoformat(), "end": (BASE + timedelta(days=30)).isoformat(), "bucket": "day"}
    flt = {"error": {"contains_": needle}}
    query = MetricsQuery.model_validate({"measures": ["runs", "error"], **span, "filter": flt})
    result = metrics(world.ctx, Viewer("admin", "admin"), query)
    assert result.totals.column("runs").to_pylist() == [len(want)]
    assert sum(result.rows.column("runs").to_pylist()) == len(want)
    assert result.totals.column("error").to_pylist() == [sum(statuses[i] == "error" for i in want)]
    r = world.client.post(
        "/api/v1/metrics", json={"measures": ["runs"], **span, "filter": flt}, headers=bearer("admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["totals"][0]["measures"]["runs"]["value"] == len(want)


@pytest.mark.parametrize(
    "needle", ['tool "web_search" failed', "GLOBAL", NODE_B, "日本", "_", "\\slash", "text"]
)
def test_downloads_hold_the_same_runs(seeded: Any, needle: str, tmp_path: Path) -> None:
    world, rows = seeded
    want = expected_ids(rows, needle)
    flt = ExecutionFilter.model_validate({"error": {"contains_": needle}})
    d = download_executions(world.ctx, Viewer("admin", "admin"), Format.PARQUET, filter=flt)
    path = tmp_path / "runs.parquet"
    path.write_bytes(b"".join(d.chunks))
    assert pq.read_table(path).column("id").to_pylist() == want
    r = world.client.get(
        "/api/v1/executions/download",
        params={"format": "jsonl", "filter": json.dumps({"error": {"contains_": needle}})},
        headers=bearer("admin"),
    )
    assert r.status_code == 200, r.text
    assert [json.loads(line)["id"] for line in r.text.splitlines() if line] == want
    one_flow = world.client.get(
        f"/api/v1/flows/{world.shared}/executions/download",
        params={"format": "jsonl", "filter": json.dumps({"error": {"contains_": needle}})},
        headers=bearer("owner"),
    )
    assert one_flow.status_code == 200, one_flow.text
    shared = [i for i in want if next(r for r in rows if r["id"] == i)["flow_id"] == world.shared]
    assert [json.loads(line)["id"] for line in one_flow.text.splitlines() if line] == shared
