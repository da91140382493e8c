"""The README's example run, fed as is to the API: the per-node facts come out as it says.

The README shows what a run's `node_results` and `errors` look like and which facts
(model, tokens, cost, duration, error) flowhistory reads from them. Both JSON blocks are parsed
out of README.md, so the documentation cannot drift from what the code does: the run is
posted, and the stored answer, the detail, the per-node breakdown and the failure signatures
are checked against the README's answer block; its costs are also recomputed here from the
shipped price file.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, bearer

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## What a run carries"


def _readme_blocks() -> tuple[dict[str, Any], dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"```json\n(.*?)\n```", text[start:end], re.S)
    assert len(blocks) == 2, "the section holds the run, then the answer"
    run, answer = (json.loads(b) for b in blocks)
    return run, answer


def _same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float) and got == pytest.approx(want, rel=1e-9, abs=1e-15), (where, got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict), (where, got)
        for key, value in want.items():
            _same(got.get(key, "<missing>"), value, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    else:
        assert got == want and type(got) is type(want), (where, got, want)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, scheduler_enabled=False)
    with TestClient(create_app(settings)) as c:
        yield c


def test_the_readme_example_run_gives_the_facts_it_shows(client: TestClient) -> None:
    run, answer = _readme_blocks()
    h = bearer("alice")
    flow = client.post("/api/v1/flows/create", json={"name": "readme", "nodes": [], "edges": []}, headers=h)
    assert flow.status_code == 200, flow.text
    flow_id = flow.json()["id"]
    body = {**run, "flow_id": flow_id}

    stored = client.post(f"/api/v1/flows/{flow_id}/executions", json=body, headers=h)
    assert stored.status_code == 200, stored.text
    _same(stored.json(), answer, "answer")
    detail = client.get(f"/api/v1/flows/{flow_id}/executions/{stored.json()['id']}", headers=h)
    _same(detail.json(), answer, "detail")

    # the per-node breakdown reads the same facts back from the store
    breakdown = {
        row["node_id"]: row for row in client.get(f"/api/v1/flows/{flow_id}/nodes", headers=h).json()
    }
    assert set(breakdown) == {n["node_id"] for n in answer["nodes"]}
    for node in answer["nodes"]:
        row = breakdown[node["node_id"]]
        _same(
            {
                k: row[k]
                for k in ("node_type", "model", "tokens_in", "tokens_out", "tokens_estimated", "cost")
            },
            {
                k: node[k]
                for k in ("node_type", "model", "tokens_in", "tokens_out", "tokens_estimated", "cost")
            },
            node["node_id"],
        )
        assert row["total_ms"] == node["duration_ms"] and row["errors"] == (node["status"] == "error")

    # the failed node's message is what failure signatures group
    failures = client.get(f"/api/v1/flows/{flow_id}/failures", headers=h).json()
    failed = [n for n in answer["nodes"] if n["error"] is not None]
    assert [(f["node_id"], f["example"]) for f in failures] == [(n["node_id"], n["error"]) for n in failed]


def test_the_readme_costs_follow_the_shipped_prices() -> None:
    """Recomputed independently: the most specific glob (fewest wildcards, then longest)."""
    _, answer = _readme_blocks()
    prices = json.loads((ROOT / "analytics" / "cost" / "prices.json").read_text())["prices"]
    total = 0.0
    for node in answer["nodes"]:
        if node["model"] is None:
            assert node["cost"] is None
            continue
        matching = [p for p in prices if fnmatch.fnmatchcase(node["model"], p["model_pattern"])]
        price = max(
            matching, key=lambda p: (-sum(map(p["model_pattern"].count, "*?[")), len(p["model_pattern"]))
        )
        cost = (
            (node["tokens_in"] or 0) * price["input_per_million"]
            + (node["tokens_out"] or 0) * price["output_per_million"]
        ) / 1e6
        assert node["cost"] == pytest.approx(cost, abs=1e-15), node
        total += cost
    assert answer["cost"] == pytest.approx(total, abs=1e-15)
    assert answer["tokens_in"] == sum(n["tokens_in"] or 0 for n in answer["nodes"])
    assert answer["tokens_out"] == sum(n["tokens_out"] or 0 for n in answer["nodes"])
