"""Hand-written converter + orjson vs a from_attributes response model + pydantic-core JSON.

One process, the same library objects, `timeit` best of 5. Run:
    PYTHONPATH=$PWD python -m bench.schema_ab
The converters are the ones api/schemas/executions.py had before issue 11 (copied here, so the
comparison survives them); the models are api/schemas/executions.py's, dumped the way FastAPI
does it for a `response_model` (TypeAdapter.validate_python(from_attributes=True) + dump_json).
"""

from __future__ import annotations

import timeit
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter

from analytics.history.counters import Stats
from analytics.history.ingest import ItemResult
from analytics.history.pagination import Page
from analytics.history.runs import Execution, ExecutionSummary
from api.schemas.executions import ExecutionOut, ExecutionPageOut, ExecutionSummaryOut, StatsOut

_EPOCH = datetime(1970, 1, 1)


def _epoch(v: datetime) -> int:
    return (v - _EPOCH) // timedelta(seconds=1)


def summary_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "flow_id": s.flow_id,
        "user_id": s.user_id,
        "status": s.status,
        "execution_time": s.execution_time,
        "created_at": _epoch(s.created_at),
    }


def execution_dict(e: Execution) -> dict[str, Any]:
    return {
        **summary_dict(e),
        "tokens_in": e.tokens_in,
        "tokens_out": e.tokens_out,
        "tokens_estimated": e.tokens_estimated,
        "cost": e.cost,
        "flow_version": e.flow_version,
        "replay_of": e.replay_of,
        "inputs": e.inputs,
        "outputs": e.outputs,
        "node_results": e.node_results,
        "errors": e.errors,
        "meta": e.meta,
        "annotation": None,
        "nodes": e.nodes,
    }


def stats_dict(s: Stats) -> dict[str, Any]:
    return {
        "total_executions": s.total_executions,
        "success_count": s.success_count,
        "error_count": s.error_count,
        "aborted_count": s.aborted_count,
        "avg_execution_time": s.avg_execution_time,
        "last_execution_at": None if s.last_execution_at is None else _epoch(s.last_execution_at),
    }


def batch_dict(results: list[ItemResult]) -> dict[str, Any]:
    stored = sum(1 for r in results if r.status == "stored")
    return {
        "stored": stored,
        "refused": len(results) - stored,
        "items": [{"index": r.index, "status": r.status, "id": r.id, "detail": r.detail} for r in results],
    }


NOW = datetime(2025, 6, 1, 12, 0, 0, 123456)


def _execution(nodes: int) -> Execution:
    results = {
        f"node{i}": {"output": "x" * 200, "tokens": {"in": 120, "out": 40}, "ok": True} for i in range(nodes)
    }
    return Execution(
        id=str(uuid.uuid4()),
        flow_id="flow-1",
        user_id="u1",
        status="success",
        inputs={"question": "q" * 300, "lang": "en"},
        outputs=results,
        node_results=results,
        errors=None,
        execution_time=1234,
        created_at=NOW,
        meta={"source": "bench"},
        tokens_in=120 * nodes,
        tokens_out=40 * nodes,
        cost=0.0012,
        flow_version="v3",
        nodes=[{"node_id": f"node{i}", "status": "success", "duration_ms": 10} for i in range(nodes)],
    )


def _summaries(n: int) -> list[ExecutionSummary]:
    return [ExecutionSummary(str(uuid.uuid4()), "flow-1", "u1", "success", 100 + i, NOW) for i in range(n)]


def _ab(name: str, old: Any, new: Any, number: int) -> None:
    assert orjson.loads(old()) == orjson.loads(new()), name  # same body, or the timing means nothing
    t_old = min(timeit.repeat(old, number=number, repeat=5)) / number * 1e6
    t_new = min(timeit.repeat(new, number=number, repeat=5)) / number * 1e6
    print(
        f"{name:<34} converter {t_old:8.1f} us   model {t_new:8.1f} us   model/converter {t_new / t_old:5.2f}x"
    )


def main() -> None:
    one = TypeAdapter(ExecutionOut)
    small, big = _execution(3), _execution(40)
    _ab(
        "save answer / detail (3 nodes)",
        lambda: orjson.dumps(execution_dict(small)),
        lambda: one.dump_json(one.validate_python(small, from_attributes=True)),
        20_000,
    )
    _ab(
        "detail (40 nodes, ~12 KB)",
        lambda: orjson.dumps(execution_dict(big)),
        lambda: one.dump_json(one.validate_python(big, from_attributes=True)),
        5_000,
    )
    rows = _summaries(60)
    many = TypeAdapter(list[ExecutionSummaryOut])
    _ab(
        "list page (60 summaries)",
        lambda: orjson.dumps([summary_dict(s) for s in rows]),
        lambda: many.dump_json(many.validate_python(rows, from_attributes=True)),
        5_000,
    )
    page = Page(_summaries(100), "cursor", 1000)
    paged = TypeAdapter(ExecutionPageOut)
    _ab(
        "cursor page (100 summaries)",
        lambda: orjson.dumps(
            {
                "items": [summary_dict(s) for s in page.items],
                "next_cursor": page.next_cursor,
                "total": page.total,
            }
        ),
        lambda: paged.dump_json(paged.validate_python(page, from_attributes=True)),
        5_000,
    )
    stats = Stats(1000, 900, 90, 10, 123.4, NOW)
    st = TypeAdapter(StatsOut)
    _ab(
        "stats",
        lambda: orjson.dumps(stats_dict(stats)),
        lambda: st.dump_json(st.validate_python(stats, from_attributes=True)),
        50_000,
    )
    from analytics.history.ingest import BatchResult
    from api.schemas.executions import BatchResultOut

    items = [
        ItemResult(i, "stored", str(uuid.uuid4())) if i % 10 else ItemResult(i, "refused", detail="bad")
        for i in range(1000)
    ]
    batch = BatchResult.of(items)
    bt = TypeAdapter(BatchResultOut)
    _ab(
        "batch answer (1000 items)",
        lambda: orjson.dumps(batch_dict(items)),
        lambda: bt.dump_json(bt.validate_python(batch, from_attributes=True)),
        500,
    )


def per_request() -> None:
    """What one request costs end to end in-process (TestClient, real store): the denominator."""
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from analytics.core.config import Settings
    from api.app import create_app
    from tests.factories import SECRET, build_world, make_execution

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "store.duckdb", webui_secret_key=SECRET, port=0)
        with TestClient(create_app(settings)) as client:
            w = build_world(client)
            h, flow = w.h("owner"), w.shared
            ids = [w.post_run("owner", flow)["id"] for _ in range(200)]
            big = w.post_run("owner", flow, text="x" * 20_000)["id"]  # a ~460 KB detail answer
            body = make_execution(flow)
            batch = [make_execution(flow) for _ in range(1000)]
            calls = {
                "POST save": lambda: client.post(f"/api/v1/flows/{flow}/executions", json=body, headers=h),
                "GET detail": lambda: client.get(f"/api/v1/flows/{flow}/executions/{ids[0]}", headers=h),
                "GET detail (~460 KB)": lambda: client.get(
                    f"/api/v1/flows/{flow}/executions/{big}", headers=h
                ),
                "GET list page (60)": lambda: client.get(
                    f"/api/v1/flows/{flow}/executions?page=1", headers=h
                ),
                "GET cursor page (100)": lambda: client.get(
                    f"/api/v1/flows/{flow}/executions/list?limit=100", headers=h
                ),
                "GET stats": lambda: client.get(f"/api/v1/flows/{flow}/executions/stats", headers=h),
                "POST batch (1000)": lambda: client.post("/api/v1/executions/batch", json=batch, headers=h),
            }
            for name, call in calls.items():
                assert call().status_code == 200, name
                n = 5 if "batch" in name else 50 if "KB" in name else 200
                t = min(timeit.repeat(call, number=n, repeat=3)) / n * 1e6
                print(f"{name:<34} per request {t:9.1f} us")


if __name__ == "__main__":
    main()
    per_request()
