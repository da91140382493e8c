"""Cost per flow, model and node, per success and burned by failures; prices edited and re-applied."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.access.permissions import Viewer
from analytics.history import ingest
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
    assert shared["error_cost"] == pytest.approx(failed) and shared["aborted_cost"] == 0
    assert shared["error_runs"] == 1 and shared["aborted_runs"] == 0
    assert "failed_cost" not in shared  # renamed: "failed" said error but counted aborted too
    assert shared["cost_per_run"] == pytest.approx((ok + failed) / 2)  # both runs are priced
    assert shared["cost_per_success"] == pytest.approx(ok + failed)
    private = rows[priced.private]
    assert private["cost"] == pytest.approx(cost(1000, 1000, 0.5, 1))  # the unpriced node adds nothing...
    assert private["unpriced_runs"] == 0  # ...but the run as a whole has a cost...
    assert private["partly_unpriced_runs"] == 1  # ...a lower bound, and said so
    assert shared["partly_unpriced_runs"] == 0


def test_cost_by_model_and_node(priced: World) -> None:
    by_model = {
        r["group"]: r
        for r in priced.client.get(
            "/api/v1/cost", params={**RANGE, "group_by": "model"}, headers=bearer("admin")
        ).json()
    }
    assert by_model["gpt-4o"]["cost"] == pytest.approx(cost(1000, 500, 2, 8) + cost(3000, 0, 2, 8))
    assert by_model["gpt-4o"]["error_cost"] == pytest.approx(cost(3000, 0, 2, 8))
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


RATES = {"gpt-4o": (2.0, 8.0), "cheap-1": (0.5, 1.0)}  # PRICES by model; "unpriced" has none
STATUSES = ("success", "error", "aborted")


def _known_sum(costs: list[float | None], rows: int) -> float | None:
    """Sum of the known costs; 0 over no rows, unknown (None) when no row has a known cost."""
    known = [c for c in costs if c is not None]
    return sum(known) if known else (0.0 if rows == 0 else None)


def _expected(runs: list[dict[str, Any]], group_by: str) -> dict[Any, dict[str, Any]]:
    """The cost report computed in plain Python from the runs as sent (by flow_node, keyed by
    (flow, node))."""
    # (group, the run's status, cost, whether a model is in it: without one, no cost is due)
    rows: list[tuple[Any, str, float | None, bool]] = []
    partly: dict[Any, int] = {}  # by flow or user: runs with a known cost and an unpriced model node
    for run in runs:
        node_costs: dict[str, float | None] = {}
        models: dict[str, str | None] = {}
        for node_id, n in run["node_results"].items():
            models[node_id] = n.get("modelId")
            rate = RATES.get(n.get("modelId") or "")
            usage = n.get("usage")  # none, and no text to estimate from: no tokens, no cost
            node_costs[node_id] = (
                cost(usage["prompt_tokens"], usage["completion_tokens"], *rate) if rate and usage else None
            )
            key = {"node": node_id, "flow_node": (run["flow_id"], node_id)}
            if models[node_id] is not None:
                key["model"] = models[node_id]
            if group_by in key:
                rows.append((key[group_by], run["status"], node_costs[node_id], models[node_id] is not None))
        if group_by in ("flow", "user"):
            known = [c for c in node_costs.values() if c is not None]
            has_model = any(m is not None for m in models.values())
            rows.append((run[f"{group_by}_id"], run["status"], sum(known) if known else None, has_model))
            group = run[f"{group_by}_id"]
            left_out = any(models[k] is not None and node_costs[k] is None for k in node_costs)
            partly[group] = partly.get(group, 0) + (bool(known) and left_out)
    out: dict[Any, dict[str, Any]] = {}
    for group in {g for g, _, _, _ in rows}:
        # a row without a model owes nothing: a known 0
        mine = [(s, c if c is not None or m else 0.0) for g, s, c, m in rows if g == group]
        unpriced = sum(c is None and m for g, _, c, m in rows if g == group)
        by = {st: [c for s, c in mine if s == st] for st in STATUSES}
        out[group] = {
            "runs": len(mine),
            "successful_runs": len(by["success"]),
            "error_runs": len(by["error"]),
            "aborted_runs": len(by["aborted"]),
            "cost": _known_sum([c for _, c in mine], len(mine)),
            "error_cost": _known_sum(by["error"], len(by["error"])),
            "aborted_cost": _known_sum(by["aborted"], len(by["aborted"])),
            "unpriced_runs": unpriced,
        }
        # per run and per success over the rows whose cost is known: an unpriced one is not free
        priced = [(s, c) for s, c in mine if c is not None]
        spent = sum(c for _, c in priced)
        successes = sum(s == "success" for s, _ in priced)
        out[group]["cost_per_run"] = spent / len(priced) if priced else None
        out[group]["cost_per_success"] = spent / successes if successes else None
        out[group]["partly_unpriced_runs"] = partly.get(group)
    return out


@pytest.mark.parametrize("group_by", ["flow", "user", "model", "node", "flow_node"])
def test_error_and_aborted_cost_match_a_python_sum_per_status(world: World, group_by: str) -> None:
    """ "Failed" is status error (as failure_rate says); aborted runs' cost is reported apart."""
    assert world.client.put("/api/v1/prices", json=PRICES, headers=bearer("admin")).status_code == 200
    rng = random.Random(10)
    runs = []
    for i in range(90):
        nodes = {
            f"model_{k}_{rng.choice('ab')}": _node(
                rng.choice(["gpt-4o", "cheap-1", "unpriced"]), rng.randrange(5000), rng.randrange(5000)
            )
            for k in range(rng.randrange(1, 4))
        }
        extra = rng.random()
        if extra < 0.2:  # a node without a model: nothing to price
            nodes = {"input_0_x": {"label": "Input", "0": "h", "1": "i"}, **nodes}
        elif extra < 0.3:  # a priced model that reported no tokens, with no text to estimate from
            nodes["model_9_t"] = {"modelId": "gpt-4o"}
        elif extra < 0.4:  # no nodes at all, or only an input
            nodes = rng.choice([{}, {"input_0_x": {"label": "Input"}}])
        runs.append(
            {
                "flow_id": rng.choice([world.shared, world.public, world.private]),
                "user_id": rng.choice(["admin", "owner", "reader"]),
                "status": rng.choice(STATUSES),
                "execution_time": 10,
                "node_results": nodes,
                "created_at": (DAY + timedelta(minutes=i)).isoformat(),
            }
        )
    for nodes in ({}, {}, {"input_0_x": {"label": "Input"}}):  # successes that owe nothing
        runs.append({**runs[0], "status": "success", "node_results": nodes})
    runs.append(  # an aborted run that no price covers: its cost is unknown, not 0
        {
            **runs[0],
            "flow_id": world.private,
            "status": "aborted",
            "node_results": {"model_7_u": _node("unpriced", 5, 5)},
        }
    )
    stored = ingest.save_executions(world.ctx, Viewer("admin", "admin"), runs)
    assert all(x.status == "stored" for x in stored)
    r = world.client.get("/api/v1/cost", params={**RANGE, "group_by": group_by}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    got = {
        (row["flow_id"], row["group"]) if group_by == "flow_node" else row["group"]: row for row in r.json()
    }
    want = _expected(runs, group_by)
    assert set(got) == set(want)
    for group, w in want.items():
        for field, value in w.items():
            assert got[group][field] == (pytest.approx(value) if value is not None else None), (group, field)
        g = got[group]
        assert g["runs"] == g["successful_runs"] + g["error_runs"] + g["aborted_runs"]


def test_a_caller_sees_only_the_cost_of_flows_they_may_read(priced: World) -> None:
    for group_by in ("flow", "user", "model"):
        rows = priced.client.get(
            "/api/v1/cost", params={**RANGE, "group_by": group_by}, headers=bearer("stranger")
        ).json()
        assert rows == [], group_by
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


def test_costs_add_exactly_rounded_the_same_on_every_path(world: World) -> None:
    """DuckDB's `sum` adds in the order its threads meet the rows: the same cost report on
    unchanged data differed in its last digits between calls and from /metrics (which adds a
    small flow's costs with math.fsum). Every path adds with the exactly rounded sum now."""
    import math

    assert world.client.put("/api/v1/prices", json=PRICES, headers=bearer("admin")).status_code == 200
    rng = random.Random(18)
    runs = [
        {
            "flow_id": world.shared,
            "status": "success",
            "execution_time": 10,
            "node_results": {
                "model_1_a": _node("gpt-4o", rng.randrange(10 ** rng.randrange(1, 7)), rng.randrange(999))
            },
            "created_at": (DAY + timedelta(seconds=i)).isoformat(),
        }
        for i in range(3000)
    ]
    assert all(
        x.status == "stored" for x in ingest.save_executions(world.ctx, Viewer("admin", "admin"), runs)
    )
    costs = world.ctx.store.read(
        lambda c: c.execute("SELECT cost FROM executions WHERE flow_id = ?", [world.shared]).fetchall()
    )
    exact = math.fsum(r[0] for r in costs)
    params = {**RANGE, "group_by": "flow", "flow_id": world.shared}
    report = world.client.get("/api/v1/cost", params=params, headers=bearer("admin")).json()
    assert [row["cost"] for row in report] == [exact]
    body = {
        "measures": ["cost"],
        "start": RANGE["start"],
        "end": RANGE["end"],
        "bucket": "day",
        "previous": False,
    }
    body["filter"] = {"flow_id": {"any_": [world.shared]}}
    metrics = world.client.post("/api/v1/metrics", json=body, headers=bearer("admin")).json()
    assert metrics["totals"][0]["measures"]["cost"]["value"] == exact, metrics["totals"]
