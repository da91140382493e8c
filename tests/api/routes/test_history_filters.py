"""The history screen's API: stats that follow the filters, the facets its choices come from,
and each search hit's first error. Every answer is checked against a computation in Python over
the runs the test generated, not against another query of the store."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.history import facets
from api.app import create_app
from tests.factories import SECRET, World, bearer, build_world

T0 = datetime(2026, 3, 1, tzinfo=UTC)
VERSIONS = ["v1", "v2", "v3"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5"]
USERS = ["owner", "reader", "writer"]
MESSAGES = ["upstream timeout after 30s", "rate limit exceeded", 'Bad "quoted" input']


def _run(flow_id: str, i: int, rnd: random.Random) -> dict[str, Any]:
    status = rnd.choice(["success", "success", "error", "aborted"])
    models = rnd.sample(MODELS, rnd.randint(0, 2))
    node_results = {f"model_{k}": {"modelId": m, "content": "hi"} for k, m in enumerate(models)}
    errors: dict[str, Any] | None = None
    if status == "error":
        shape = i % 3
        msg = rnd.choice(MESSAGES)
        if shape == 0:
            errors = {"model_0": msg, "global": "second"}
        elif shape == 1:
            errors = {"global": msg}
        else:
            errors = {"model_1": {"code": 429, "details": [7, {"message": msg}]}, "model_0": "later"}
    return {
        "flow_id": flow_id,
        "status": status,
        "execution_time": rnd.randint(0, 20_000),
        "created_at": (T0 + timedelta(minutes=37 * i)).isoformat(),
        "user_id": rnd.choice(USERS),
        "flow_version": rnd.choice(VERSIONS),
        "node_results": node_results,
        "errors": errors,
    }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, list[dict[str, Any]]]]:
    folder: Path = tmp_path_factory.mktemp("history_filters")
    app = create_app(Settings(db_path=folder / "s.duckdb", webui_secret_key=SECRET, port=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        w = build_world(client)
        rnd = random.Random(14)
        runs = [_run(w.shared, i, rnd) for i in range(240)]
        r = client.post("/api/v1/executions/batch", json=runs, headers=bearer("admin"))
        assert r.status_code == 200 and r.json()["refused"] == 0, r.text
        for run, item in zip(runs, r.json()["items"], strict=True):
            run["id"] = item["id"]
        yield w, runs


def _created(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["created_at"])


def _expected(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's stats shape, computed here."""
    total = len(runs)
    time_sum = sum(r["execution_time"] for r in runs)
    last = max((_created(r) for r in runs), default=None)
    return {
        "total_executions": total,
        "success_count": sum(r["status"] == "success" for r in runs),
        "error_count": sum(r["status"] == "error" for r in runs),
        "aborted_count": sum(r["status"] == "aborted" for r in runs),
        "avg_execution_time": float(round(time_sum / total)) if total else 0.0,
        "last_execution_at": int(last.timestamp()) if last else None,
    }


def _models(run: dict[str, Any]) -> set[str]:
    return {n["modelId"] for n in run["node_results"].values()}


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _stats(w: World, user: str, params: Any) -> Any:
    return w.client.get(f"/api/v1/flows/{w.shared}/executions/stats", params=params, headers=bearer(user))


CASES: list[tuple[str, list[tuple[str, str]], Any]] = [
    (
        "status+version",
        [("status", "error"), ("flow_version", "v2")],
        lambda r: r["status"] == "error" and r["flow_version"] == "v2",
    ),
    ("two statuses", [("status", "success"), ("status", "aborted")], lambda r: r["status"] != "error"),
    ("model", [("model", "gpt-4o")], lambda r: "gpt-4o" in _models(r)),
    (
        "user+version",
        [("user_id", "reader"), ("flow_version", "v1"), ("flow_version", "v3")],
        lambda r: r["user_id"] == "reader" and r["flow_version"] in {"v1", "v3"},
    ),
    (
        "time range",
        [("start", "2026-03-02T00:00:00Z"), ("end", "2026-03-04T12:00:00+02:00")],
        lambda r: datetime(2026, 3, 2, tzinfo=UTC) <= _created(r) < datetime(2026, 3, 4, 10, tzinfo=UTC),
    ),
    (
        "error text",
        [("error", "TIMEOUT")],
        lambda r: any("timeout" in t.lower() for t in _texts(r["errors"] or {})),
    ),
    ("matches nothing", [("model", "no-such-model")], lambda r: False),
]


@pytest.mark.parametrize("params,keep", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filtered_stats_equal_counting_the_generated_runs(seeded: Any, params: Any, keep: Any) -> None:
    w, runs = seeded
    r = _stats(w, "owner", params)
    assert r.status_code == 200, r.text
    expected = _expected([run for run in runs if keep(run)])
    assert r.json() == expected
    assert expected["total_executions"] > 0 or params == [("model", "no-such-model")]


def test_stats_without_parameters_answer_as_before(seeded: Any) -> None:
    w, runs = seeded
    plain = _stats(w, "owner", {})
    assert plain.status_code == 200
    assert plain.json() == _expected(runs)
    # a filter that keeps every run answers exactly what the counters answer
    every = _stats(w, "owner", [("status", "success"), ("status", "error"), ("status", "aborted")])
    assert every.json() == plain.json()


def test_a_reader_gets_stats_of_their_own_filtered_runs_only(seeded: Any) -> None:
    w, runs = seeded
    r = _stats(w, "reader", [("status", "success")])
    assert r.status_code == 200
    assert r.json() == _expected([x for x in runs if x["user_id"] == "reader" and x["status"] == "success"])
    # asking for someone else's runs does not widen what a reader sees
    other = _stats(w, "reader", [("user_id", "owner")])
    assert other.json()["total_executions"] == 0


@pytest.mark.parametrize(
    "params,where,needle",
    [
        ([("status", "failed")], "status", "failed"),
        ([("start", "2026-03-05T00:00:00Z"), ("end", "2026-03-01T00:00:00Z")], "start", "earlier"),
        ([("start", "yesterday")], "start", ""),
        ([("error", "")], "error", "at least 1"),
        ([("error", "x" * 501)], "error", "at most 500"),
    ],
)
def test_bad_filter_values_are_a_422_naming_the_parameter(
    seeded: Any, params: Any, where: str, needle: str
) -> None:
    w, _ = seeded
    before = _stats(w, "owner", {}).json()
    r = _stats(w, "owner", params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    if isinstance(detail, str):  # a range ending before it starts fits the schema: a message
        assert where in detail and needle in detail, detail
    else:
        assert any(d["loc"] == ["query", where] and needle in d["msg"] for d in detail), detail
    assert _stats(w, "owner", {}).json() == before


def test_filters_keep_the_contract_check_order(seeded: Any) -> None:
    w, _ = seeded
    assert _stats(w, "stranger", [("status", "error")]).status_code == 403
    r = w.client.get(
        "/api/v1/flows/no-such-flow/executions/stats", params={"status": "error"}, headers=bearer("owner")
    )
    assert r.status_code == 404


def test_a_time_range_mixing_an_offset_and_none_is_answered_not_a_500(seeded: Any) -> None:
    w, runs = seeded
    r = w.client.post(
        "/api/v1/executions/search",
        json={
            "filter": {
                "flow_id": {"any_": [w.shared]},
                "created_at": {"after_": "2026-03-02T00:00:00Z", "before_": "2026-03-03T00:00:00"},
            }
        },
        headers=bearer("owner"),
    )
    assert r.status_code == 200, r.text
    lo, hi = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    assert r.json()["total"] == sum(lo <= _created(x) < hi for x in runs)


def _facet(runs: list[dict[str, Any]], values: Any) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for run in runs:
        for v in values(run):
            counts[v] = counts.get(v, 0) + 1
    return [{"value": v, "runs": n} for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


@pytest.mark.parametrize("user", ["owner", "reader"])
def test_facets_are_the_values_the_visible_runs_have(seeded: Any, user: str) -> None:
    w, runs = seeded
    seen = runs if user == "owner" else [x for x in runs if x["user_id"] == user]
    r = w.client.get(f"/api/v1/flows/{w.shared}/executions/facets", headers=bearer(user))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["flow_version"] == {"values": _facet(seen, lambda x: [x["flow_version"]]), "truncated": False}
    assert body["model"] == {"values": _facet(seen, _models), "truncated": False}
    assert body["user_id"] == {"values": _facet(seen, lambda x: [x["user_id"]]), "truncated": False}


def test_facets_check_access(seeded: Any) -> None:
    w, _ = seeded
    assert (
        w.client.get(f"/api/v1/flows/{w.shared}/executions/facets", headers=bearer("stranger")).status_code
        == 403
    )
    assert w.client.get("/api/v1/flows/nope/executions/facets", headers=bearer("owner")).status_code == 404


def _first(errors: dict[str, Any] | None) -> tuple[str | None, str | None]:
    for key, value in (errors or {}).items():
        texts = _texts(value)
        if texts:
            return (None if key == "global" else key), texts[0]
    return None, None


def test_search_hits_carry_their_first_error_when_asked(seeded: Any) -> None:
    w, runs = seeded
    by_id = {r["id"]: r for r in runs}
    body = {"filter": {"flow_id": {"any_": [w.shared]}}, "limit": 500}
    plain = w.client.post("/api/v1/executions/search", json=body, headers=bearer("owner")).json()
    assert all(item["error_message"] is None and item["error_node"] is None for item in plain["items"])
    asked = w.client.post(
        "/api/v1/executions/search", json={**body, "include_errors": True}, headers=bearer("owner")
    )
    assert asked.status_code == 200
    items = asked.json()["items"]
    assert len(items) == len(runs)
    for item in items:
        assert (item["error_node"], item["error_message"]) == _first(by_id[item["id"]]["errors"]), item["id"]
    assert sum(item["error_message"] is not None for item in items) == sum(
        r["status"] == "error" for r in runs
    )


def test_facets_answer_the_same_past_the_model_list_limit(
    seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many distinct per-run model lists take the unnesting query: the same answer."""
    w, _ = seeded
    url = f"/api/v1/flows/{w.shared}/executions/facets"
    grouped = w.client.get(url, headers=bearer("owner")).json()
    monkeypatch.setattr(facets, "_MODEL_LISTS", 1)
    assert w.client.get(url, headers=bearer("owner")).json() == grouped
