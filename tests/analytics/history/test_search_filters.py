"""One filter table, checked at both layers (library and HTTP) against plain Python over the rows."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.access.permissions import Viewer
from analytics.history import ingest
from analytics.history.filters import ExecutionFilter
from analytics.history.search import ExecutionSort, count_executions, search_executions
from tests.factories import World, bearer, build_world

BASE = datetime(2026, 3, 1, tzinfo=UTC)
Row = dict[str, Any]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from analytics.core.config import Settings
    from api.app import create_app
    from tests.factories import SECRET

    settings = Settings(db_path=tmp_path_factory.mktemp("search") / "s.duckdb", webui_secret_key=SECRET)
    with TestClient(create_app(settings)) as client:
        world = build_world(client)
        rng = random.Random(3)
        rows: list[Row] = []
        items = []
        for i in range(240):
            flow = rng.choice([world.shared, world.public, world.private])
            user = rng.choice(["owner", "reader", "writer", "stranger"])
            status = rng.choice(["success", "success", "error", "aborted"])
            node = rng.choice(["model_1_a", "model_2_b"])
            model = rng.choice(["gpt-4o", "llama3"])
            created = BASE + timedelta(minutes=7 * i)
            ms = rng.randrange(10, 5000)
            # a failed node without a message (null) is still a failed node
            message = f"Timeout after {rng.randrange(100)}s" if i % 9 else None
            errors = {node: message} if status == "error" else None
            meta = {"env": rng.choice(["prod", "dev"])}
            items.append(
                {
                    "flow_id": flow,
                    "status": status,
                    "execution_time": ms,
                    "created_at": created.isoformat(),
                    "user_id": user,
                    "node_results": {node: {"modelId": model, "0": "x"}},
                    "errors": errors,
                    "meta": meta,
                }
            )
        results = ingest.save_executions(world.ctx, Viewer("admin", "admin"), items)
        for r, item in zip(results, items, strict=True):
            assert r.status == "stored", r
            rows.append({**item, "id": r.id, "created": datetime.fromisoformat(item["created_at"])})
        yield world, rows


def visible_to(world: World, user: str) -> Callable[[Row], bool]:
    def ok(r: Row) -> bool:
        if user == "admin" or user == "owner":
            return True
        if r["flow_id"] == world.shared:
            return user == "writer" or (r["user_id"] == user and user in ("reader", "grouped"))
        if r["flow_id"] == world.public:
            return r["user_id"] == user
        return False

    return ok


CASES: list[tuple[str, dict[str, Any], Callable[[Row], bool]]] = [
    ("empty filter", {}, lambda r: True),
    ("status", {"status": {"any_": ["error"]}}, lambda r: r["status"] == "error"),
    ("two statuses", {"status": {"any_": ["error", "aborted"]}}, lambda r: r["status"] != "success"),
    (
        "time range",
        {
            "created_at": {
                "after_": (BASE + timedelta(hours=5)).isoformat(),
                "before_": (BASE + timedelta(hours=20)).isoformat(),
            }
        },
        lambda r: BASE + timedelta(hours=5) <= r["created"] < BASE + timedelta(hours=20),
    ),
    (
        "duration",
        {"execution_time": {"ge_": 1000, "le_": 3000}},
        lambda r: 1000 <= r["execution_time"] <= 3000,
    ),
    ("user", {"user_id": {"any_": ["reader"]}}, lambda r: r["user_id"] == "reader"),
    ("node", {"node_id": {"any_": ["model_2_b"]}}, lambda r: "model_2_b" in r["node_results"]),
    # the runs where a node failed (the overview's failure-signature links): an error at the node,
    # with a message or null, not its presence
    ("error node", {"error_node": {"any_": ["model_2_b"]}}, lambda r: "model_2_b" in (r["errors"] or {})),
    (
        "model",
        {"model": {"any_": ["llama3"]}},
        lambda r: next(iter(r["node_results"].values()))["modelId"] == "llama3",
    ),
    (
        "error text",
        {"error": {"contains_": "TIMEOUT AFTER 4"}},
        lambda r: bool(r["errors"]) and "Timeout after 4" in (next(iter(r["errors"].values())) or ""),
    ),
    ("meta", {"meta": {"env": "prod"}}, lambda r: r["meta"]["env"] == "prod"),
    (
        "intersection, not union",
        {"status": {"any_": ["error"]}, "meta": {"env": "dev"}, "execution_time": {"ge_": 2000}},
        lambda r: r["status"] == "error" and r["meta"]["env"] == "dev" and r["execution_time"] >= 2000,
    ),
]


@pytest.mark.parametrize("user", ["admin", "owner", "writer", "reader", "stranger"])
@pytest.mark.parametrize(("name", "body", "pred"), CASES, ids=[c[0] for c in CASES])
def test_filters_at_both_layers(
    seeded: Any, user: str, name: str, body: dict[str, Any], pred: Callable[[Row], bool]
) -> None:
    world, rows = seeded
    role = "admin" if user == "admin" else "user"
    expected = sorted(
        (r for r in rows if pred(r) and visible_to(world, user)(r)),
        key=lambda r: (r["created"], r["id"]),
        reverse=True,
    )
    flt = ExecutionFilter.model_validate(body)
    assert count_executions(world.ctx, Viewer(user, role), filter=flt) == len(expected)
    page = search_executions(world.ctx, Viewer(user, role), filter=flt, limit=500)
    assert [i.row.id for i in page.items] == [r["id"] for r in expected]
    r = world.client.post(
        "/api/v1/executions/search", json={"filter": body, "limit": 500}, headers=bearer(user)
    )
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [x["id"] for x in expected]
    assert r.json()["total"] == len(expected)
    c = world.client.post("/api/v1/executions/count", json={"filter": body}, headers=bearer(user))
    assert c.json() == {"count": len(expected)}


@pytest.mark.parametrize("sort", list(ExecutionSort))
def test_cursor_walks_every_sort_without_gaps_or_repeats(seeded: Any, sort: ExecutionSort) -> None:
    world, rows = seeded
    column = "created" if "created_at" in sort.value else "execution_time"
    expected = sorted(rows, key=lambda r: (r[column], r["id"]), reverse=sort.value.startswith("-"))
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        body: dict[str, Any] = {"sort": sort.value, "limit": 37, "cursor": cursor}
        r = world.client.post("/api/v1/executions/search", json=body, headers=bearer("admin"))
        assert r.status_code == 200, r.text
        seen += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in expected]


def test_payloads_only_when_asked(seeded: Any) -> None:
    world, _ = seeded
    lean = world.client.post("/api/v1/executions/search", json={"limit": 3}, headers=bearer("admin")).json()
    assert all(i["execution"] is None for i in lean["items"])
    full = world.client.post(
        "/api/v1/executions/search", json={"limit": 3, "include_payloads": True}, headers=bearer("admin")
    ).json()
    assert all(i["execution"]["node_results"] for i in full["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"statuz": {"any_": ["error"]}}}, "statuz"),
        ({"filter": {"status": {"any_": ["nope"]}}}, "status"),
        ({"filter": {"status": {"all_": ["error"]}}}, "all_"),
        ({"filter": {"execution_time": {"ge_": 10, "le_": 5}}}, "execution_time"),
        ({"filter": {"execution_time": {"ge_": -1}}}, "ge_"),
        ({"filter": {"created_at": {"after_": "2026-02-01", "before_": "2026-01-01"}}}, "created_at"),
        ({"filter": {"created_at": {"after_": "yesterday"}}}, "after_"),
        ({"filter": {"meta": {"bad key!": "x"}}}, "meta"),
        ({"filter": {"error": {"contains_": ""}}}, "contains_"),
        ({"sort": "sideways"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_input_is_422_naming_the_field(seeded: Any, body: dict[str, Any], field: str) -> None:
    world, _ = seeded
    r = world.client.post("/api/v1/executions/search", json=body, headers=bearer("owner"))
    assert r.status_code == 422, r.text
    assert field in r.text


def test_a_cursor_of_another_sort_is_refused(seeded: Any) -> None:
    world, _ = seeded
    first = world.client.post(
        "/api/v1/executions/search", json={"limit": 2, "sort": "-execution_time"}, headers=bearer("admin")
    ).json()
    r = world.client.post(
        "/api/v1/executions/search",
        json={"limit": 2, "cursor": first["next_cursor"]},
        headers=bearer("admin"),
    )
    assert r.status_code == 422 and "cursor" in r.text


def test_search_needs_auth(seeded: Any) -> None:
    world, _ = seeded
    assert world.client.post("/api/v1/executions/search", json={}).status_code == 401
    assert (
        world.client.post("/api/v1/executions/search", json={}, headers=bearer("pending")).status_code == 401
    )
