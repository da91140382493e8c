"""The batch endpoint: a backfilled run keeps the version that ran (its flow_version, or its
flow definition's), each item gets its verdict, and a stored run equals the single-run POST's."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.flows import registry as flows
from api.app import create_app
from bench import generate
from tests.factories import SECRET, World, bearer, build_world

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("batch")
    app = create_app(Settings(db_path=folder / "s.duckdb", webui_secret_key=SECRET, port=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield build_world(client)


def _flow(w: World) -> tuple[str, str]:
    f = flows.create_flow(w.ctx, Viewer("owner"), name="backfill", nodes=[{"id": "today"}], edges=[])
    return f.id, f.version


def _post(w: World, items: list[Any]) -> dict[str, Any]:
    body = b"\n".join(orjson.dumps(i) for i in items)
    r = w.client.post("/api/v1/executions/batch", content=body, headers={**bearer("owner"), **NDJSON})
    assert r.status_code == 200, r.text
    return r.json()


def _stored_version(w: World, run_id: str) -> str | None:
    rows = w.ctx.store.read(
        lambda c: c.execute("SELECT flow_version FROM executions WHERE id = ?", [run_id]).fetchall()
    )
    assert len(rows) == 1
    return rows[0][0]


def _run(flow_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "status": "success",
        "execution_time": 5,
        "created_at": 1_700_000_000,
        **extra,
    }


def test_a_run_keeps_its_own_flow_version_or_its_definitions(w: World) -> None:
    fid, today = _flow(w)
    old_nodes = [{"id": "model_1", "type": "model", "data": {"model": "gpt-4o"}}]
    old_edges = [{"source": "input_1", "target": "model_1"}]
    out = _post(
        w,
        [
            _run(fid, flow_version="v-2024-01"),
            _run(fid, flow={"nodes": old_nodes, "edges": old_edges}),
            _run(fid),
            _run(fid, flow_version="x", flow={"nodes": [], "edges": []}),
            _run(fid, flow={"nodes": "not a list", "edges": []}),
            _run(fid, flow_version=""),
        ],
    )
    items = out["items"]
    assert [i["status"] for i in items] == ["stored", "stored", "stored", "refused", "refused", "refused"]
    assert out["stored"] == 3 and out["refused"] == 3
    assert _stored_version(w, items[0]["id"]) == "v-2024-01"
    # the definition's version, as the registry computes it: keys sorted, so order of keys is moot
    reordered = [{"data": {"model": "gpt-4o"}, "type": "model", "id": "model_1"}]
    assert _stored_version(w, items[1]["id"]) == flows.flow_version(reordered, old_edges)
    assert _stored_version(w, items[1]["id"]) != today
    assert _stored_version(w, items[2]["id"]) == today
    assert "flow_version or flow, not both" in items[3]["detail"]
    assert "flow.nodes" in items[4]["detail"]
    assert "flow_version" in items[5]["detail"]


def test_a_runs_definition_is_kept_for_its_replay(w: World) -> None:
    """The definition a backfilled run carried is what its replay offers, not today's."""
    fid, today = _flow(w)
    old_nodes = [{"id": "model_1", "type": "model", "data": {"model": "gpt-3.5"}}]
    old_edges: list[Any] = []
    older, newer = _run(fid, flow={"nodes": old_nodes, "edges": old_edges}), _run(fid)
    older["created_at"] = 1_600_000_000
    twice = _run(fid, flow={"nodes": old_nodes, "edges": old_edges}, created_at=1_650_000_000)
    out = _post(w, [older, newer, twice])
    assert [i["status"] for i in out["items"]] == ["stored"] * 3
    ran = w.client.get(
        f"/api/v1/flows/{fid}/executions/{out['items'][0]['id']}/replay", headers=bearer("owner")
    )
    assert ran.status_code == 200, ran.text
    replay = ran.json()
    assert replay["definition_is_current"] is False
    assert replay["definition"]["nodes"] == old_nodes and replay["definition"]["edges"] == old_edges
    assert replay["definition"]["version"] == flows.flow_version(old_nodes, old_edges) != today
    rows = w.ctx.store.read(
        lambda c: c.execute(
            "SELECT epoch(flow_updated_at) FROM flow_versions WHERE flow_id = ? AND version = ?",
            [fid, replay["definition"]["version"]],
        ).fetchall()
    )
    assert rows == [(1_600_000_000,)]  # once, dated by its earliest run
    current = w.client.get(
        f"/api/v1/flows/{fid}/executions/{out['items'][1]['id']}/replay", headers=bearer("owner")
    )
    assert current.json()["definition"]["version"] == today


def _comparable(w: World, run_id: str) -> tuple[Any, ...]:
    rows = w.ctx.store.read(
        lambda c: c.execute(
            "SELECT flow_id, user_id, status, execution_time, inputs, outputs, outputs_same, node_results,"
            " errors, meta, node_count, tokens_in, tokens_out, tokens_estimated, cost, nodes"
            " FROM executions WHERE id = ?",
            [run_id],
        ).fetchall()
    )
    assert len(rows) == 1
    return rows[0]


def test_a_batch_stores_each_generated_run_as_the_single_post_does(w: World) -> None:
    fid, _ = _flow(w)
    runs = list(itertools.islice(generate.generate_runs(300, seed=11), 300))
    bodies = [generate.request_body(r) | {"flow_id": fid} for r in runs]
    singles = []
    for body in bodies:
        r = w.client.post(f"/api/v1/flows/{fid}/executions", json=body, headers=bearer("owner"))
        assert r.status_code in (200, 201), r.text
        singles.append(r.json()["id"])
    out = _post(w, [b | {"id": str(uuid.uuid4())} for b in bodies])
    assert out["stored"] == len(bodies), out
    for single, item in zip(singles, out["items"], strict=True):
        assert _comparable(w, item["id"]) == _comparable(w, single)
