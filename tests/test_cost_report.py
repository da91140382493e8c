"""Cost per flow, model and node, per success and burned by failures; prices edited and re-applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import ingest
from analytics.access import Viewer
from tests.factories import World, bearer

DAY = datetime(2026, 4, 2, tzinfo=UTC)
RANGE = {"start": (DAY - timedelta(days=1)).isoformat(), "end": (DAY + timedelta(days=2)).isoformat()}
PRICES = {
    "prices": [
        {
            "model_pattern": "gpt-4o*",
            "input_per_million": 2.0,
            "output_per_million": 8.0,
            "valid_from": "2020-01-01",
        },
        {
            "model_pattern": "cheap-*",
            "input_per_million": 0.5,
            "output_per_million": 1.0,
            "valid_from": "2020-01-01",
        },
    ]
}


def _node(model: str, tin: int, tout: int) -> dict[str, Any]:
    return {"modelId": model, "usage": {"prompt_tokens": tin, "completion_tokens": tout}}


@pytest.fixture
def priced(world: World) -> World:
    r = world.client.put("/api/v1/prices", json=PRICES, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    runs = [
        (
            world.shared,
            "success",
            {"model_1_a": _node("gpt-4o", 1000, 500), "model_1_b": _node("cheap-1", 4000, 2000)},
        ),
        (world.shared, "error", {"model_1_a": _node("gpt-4o", 3000, 0)}),
        (
            world.private,
            "success",
            {"model_1_b": _node("cheap-1", 1000, 1000), "model_9_z": _node("unpriced", 9, 9)},
        ),
    ]
    items = [
        {"flow_id": f, "status": s, "execution_time": 10, "node_results": nr, "created_at": DAY.isoformat()}
        for f, s, nr in runs
    ]
    assert all(
        x.status == "stored" for x in ingest.save_executions(world.ctx, Viewer("admin", "admin"), items)
    )
    return world


def cost(tin: int, tout: int, pin: float, pout: float) -> float:
    return (tin * pin + tout * pout) / 1e6


def test_cost_by_flow_per_success_and_burned_by_failures(priced: World) -> None:
    r = priced.client.get("/api/v1/cost", params={**RANGE, "group_by": "flow"}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    rows = {row["group"]: row for row in r.json()}
    ok = cost(1000, 500, 2, 8) + cost(4000, 2000, 0.5, 1)
    failed = cost(3000, 0, 2, 8)
    shared = rows[priced.shared]
    assert shared["runs"] == 2 and shared["successful_runs"] == 1
    assert shared["cost"] == pytest.approx(ok + failed)
    assert shared["failed_cost"] == pytest.approx(failed)
    assert shared["cost_per_run"] == pytest.approx((ok + failed) / 2)
    assert shared["cost_per_success"] == pytest.approx(ok + failed)
    private = rows[priced.private]
    assert private["cost"] == pytest.approx(cost(1000, 1000, 0.5, 1))  # the unpriced node adds nothing...
    assert private["unpriced_runs"] == 0  # ...but the run as a whole has a cost


def test_cost_by_model_and_node(priced: World) -> None:
    by_model = {
        r["group"]: r
        for r in priced.client.get(
            "/api/v1/cost", params={**RANGE, "group_by": "model"}, headers=bearer("admin")
        ).json()
    }
    assert by_model["gpt-4o"]["cost"] == pytest.approx(cost(1000, 500, 2, 8) + cost(3000, 0, 2, 8))
    assert by_model["gpt-4o"]["failed_cost"] == pytest.approx(cost(3000, 0, 2, 8))
    assert by_model["cheap-1"]["runs"] == 2
    assert by_model["unpriced"]["cost"] is None and by_model["unpriced"]["unpriced_runs"] == 1
    by_node = {
        r["group"]: r
        for r in priced.client.get(
            "/api/v1/cost",
            params={**RANGE, "group_by": "node", "flow_id": priced.shared},
            headers=bearer("owner"),
        ).json()
    }
    assert set(by_node) == {"model_1_a", "model_1_b"}
    assert by_node["model_1_b"]["tokens_in"] == 4000


def test_a_caller_sees_only_the_cost_of_flows_they_may_read(priced: World) -> None:
    rows = priced.client.get("/api/v1/cost", params=RANGE, headers=bearer("stranger")).json()
    assert rows == []
    r = priced.client.get(
        "/api/v1/cost", params={**RANGE, "flow_id": priced.private}, headers=bearer("stranger")
    )
    assert r.status_code == 403


def test_new_prices_apply_after_a_recompute_of_the_range(priced: World) -> None:
    doubled = {
        "prices": [
            {
                **p,
                "input_per_million": 2 * p["input_per_million"],
                "output_per_million": 2 * p["output_per_million"],
            }
            for p in PRICES["prices"]
        ]
    }
    before = priced.client.get("/api/v1/cost", params=RANGE, headers=bearer("admin")).json()
    assert priced.client.put("/api/v1/prices", json=doubled, headers=bearer("admin")).status_code == 200
    unchanged = priced.client.get("/api/v1/cost", params=RANGE, headers=bearer("admin")).json()
    assert unchanged == before  # stored costs stay until recomputed
    r = priced.client.post("/api/v1/prices/recompute", params=RANGE, headers=bearer("admin"))
    assert r.json() == {"repriced_runs": 3}
    after = {
        row["group"]: row["cost"]
        for row in priced.client.get("/api/v1/cost", params=RANGE, headers=bearer("admin")).json()
    }
    for row in before:
        assert after[row["group"]] == pytest.approx(2 * row["cost"])
    node_costs = priced.ctx.store.read(
        lambda c: c.execute("SELECT sum(cost) FROM execution_nodes").fetchall()
    )[0][0]
    assert node_costs == pytest.approx(sum(after.values()))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        (
            "put",
            "/api/v1/prices",
            {
                "json": {
                    "prices": [
                        {
                            "model_pattern": "x",
                            "input_per_million": -1,
                            "output_per_million": 1,
                            "valid_from": "2024-01-01",
                        }
                    ]
                }
            },
            "input_per_million",
        ),
        (
            "put",
            "/api/v1/prices",
            {
                "json": {
                    "prices": [
                        {
                            "model_pattern": "",
                            "input_per_million": 1,
                            "output_per_million": 1,
                            "valid_from": "2024-01-01",
                        }
                    ]
                }
            },
            "model_pattern",
        ),
        (
            "put",
            "/api/v1/prices",
            {
                "json": {
                    "prices": [
                        {
                            "model_pattern": "x",
                            "input_per_million": 1,
                            "output_per_million": 1,
                            "valid_from": "soon",
                        }
                    ]
                }
            },
            "valid_from",
        ),
        ("get", "/api/v1/cost", {"params": {"start": RANGE["end"], "end": RANGE["start"]}}, "start"),
        ("get", "/api/v1/cost", {"params": {**RANGE, "group_by": "planet"}}, "group_by"),
        ("get", "/api/v1/cost", {"params": {"start": "yesterday", "end": RANGE["end"]}}, "start"),
        (
            "post",
            "/api/v1/prices/recompute",
            {"params": {"start": RANGE["end"], "end": RANGE["start"]}},
            "start",
        ),
    ],
)
def test_bad_input_is_422_naming_the_field(
    world: World, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    r = getattr(world.client, method)(path, headers=bearer("admin"), **kwargs)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_only_admins_change_prices(world: World) -> None:
    assert world.client.get("/api/v1/prices", headers=bearer("owner")).status_code == 200
    assert world.client.put("/api/v1/prices", json=PRICES, headers=bearer("owner")).status_code == 403
    assert (
        world.client.post("/api/v1/prices/recompute", params=RANGE, headers=bearer("owner")).status_code
        == 403
    )
    assert world.client.get("/api/v1/prices").status_code == 401
