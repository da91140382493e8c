"""The insight routes over HTTP: auth and access first, then answers, row visibility, bad params.

One app per module; each test uses the world's flows (shared: reader and writer grants,
private: owner only) and runs it imports through the batch route with explicit times.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.access.permissions import Viewer
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import World, bearer, make_execution, open_world

ROUTES = ("nodes", "failures", "reliability", "versions", "anomalies")
BASE = datetime(2026, 3, 1, 9, 0, 0)


@pytest.fixture(scope="module")
def iw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from open_world(tmp_path_factory.mktemp("insights"))


@pytest.fixture(scope="module")
def flow(iw: World) -> str:
    """A flow shaped like the world's shared one: 40 owner runs and 10 reader runs."""
    acl = iw.ctx.directory.flow(iw.shared)
    assert acl is not None
    fid = flows.create_flow(
        iw.ctx, Viewer("owner"), name="insights", nodes=[], edges=[], access_control=acl.access_control
    ).id
    runs = []
    for i in range(50):
        user = "reader" if i % 5 == 0 else "owner"
        failed = i % 3 == 0
        errors = {
            ("tool_2_b" if user == "owner" else "model_1_a"): f"{user} failure #{i} at id {uuid.uuid4()}"
        }
        nodes = {
            "model_1_a": {"modelId": "gpt-4o-mini", "duration_ms": 100 + i},
            "tool_2_b": {"duration_ms": 5},
        }
        runs.append(
            make_execution(
                fid,
                created_at=(BASE + timedelta(minutes=i)).isoformat(),
                user_id=user,
                status="error" if failed else "success",
                execution_time=1000 + (i % 7) * 10 if i != 45 else 60_000,
                node_results=nodes,
                outputs=nodes,
                errors=errors if failed else None,
            )
        )
    results = ingest.save_executions(iw.ctx, Viewer("root", "admin"), runs)
    assert all(r.status == "stored" for r in results)
    return fid


def _get(w: World, user: str | None, path: str, **params: Any) -> Any:
    headers = bearer(user) if user else {}
    return w.client.get(f"/api/v1/flows/{path}", headers=headers, params=params)


@pytest.mark.parametrize("route", ROUTES)
def test_auth_and_access(iw: World, route: str) -> None:
    assert _get(iw, None, f"{iw.shared}/{route}").status_code == 401
    assert _get(iw, "stranger", f"{iw.private}/{route}").status_code == 403
    missing = _get(iw, "owner", f"no-such-flow/{route}")
    assert missing.status_code == 404 and missing.json() == {"detail": "Flow not found"}
    for user in ("owner", "admin", "reader", "writer", "grouped"):
        assert _get(iw, user, f"{iw.shared}/{route}").status_code == 200, user


def test_nodes(iw: World, flow: str) -> None:
    r = _get(iw, "owner", f"{flow}/nodes")
    assert r.status_code == 200
    rows = {n["node_id"]: n for n in r.json()}
    assert rows["model_1_a"]["runs"] == 50 and rows["model_1_a"]["p50_ms"] == 124.5
    assert rows["tool_2_b"]["errors"] == 13  # owner runs failing: i % 3 == 0 and i % 5 != 0
    mine = {n["node_id"]: n for n in _get(iw, "reader", f"{flow}/nodes").json()}
    assert mine["model_1_a"]["runs"] == 10 and mine["model_1_a"]["errors"] == 4
    ranged = _get(iw, "owner", f"{flow}/nodes", start=(BASE + timedelta(minutes=40)).isoformat() + "Z")
    assert {n["node_id"]: n["runs"] for n in ranged.json()}["model_1_a"] == 10


def test_failures(iw: World, flow: str) -> None:
    end = (BASE + timedelta(days=1)).isoformat()
    got = _get(iw, "owner", f"{flow}/failures", end=end).json()
    assert {(s["node_id"], s["signature"], s["count"]) for s in got} == {
        ("tool_2_b", "owner failure #<n> at id <uuid>", 13),
        ("model_1_a", "reader failure #<n> at id <uuid>", 4),
    }
    assert all(isinstance(s["first_seen"], int) for s in got)
    mine = _get(iw, "reader", f"{flow}/failures", end=end).json()
    assert [s["signature"] for s in mine] == ["reader failure #<n> at id <uuid>"]  # never the owner's


def test_reliability(iw: World, flow: str) -> None:
    end = BASE + timedelta(hours=2)
    got = _get(iw, "owner", f"{flow}/reliability", end=end.isoformat()).json()
    assert (got["runs"], got["error_count"], got["success_count"]) == (50, 17, 33)
    assert got["longest_failure_streak"] == 1 and got["current_failure_streak"] == 0
    assert got["last_success_at"] == int(
        (BASE + timedelta(minutes=49) - datetime(1970, 1, 1)).total_seconds()
    )
    assert got["as_of"] == int((end - datetime(1970, 1, 1)).total_seconds())
    # the reader's own runs are i = 0, 5, ..., 45: errors at 0, 15, 30, 45 -> current streak 1
    mine = _get(iw, "reader", f"{flow}/reliability", end=end.isoformat()).json()
    assert (mine["runs"], mine["error_count"], mine["current_failure_streak"]) == (10, 4, 1)


def test_versions(iw: World, flow: str) -> None:
    got = _get(iw, "owner", f"{flow}/versions").json()
    assert len(got) == 1 and got[0]["runs"] == 50 and got[0]["previous_version"] is None
    assert _get(iw, "reader", f"{flow}/versions").json()[0]["runs"] == 10


def test_anomalies(iw: World, flow: str) -> None:
    got = _get(iw, "owner", f"{flow}/anomalies").json()
    assert [a["value"] for a in got] == [60_000.0]
    assert got[0]["robust_z"] > 3.5 and got[0]["baseline_runs"] == 45
    assert (
        _get(iw, "owner", f"{flow}/anomalies", metric="cost").json() == []
    )  # all runs cost the same: no scale
    mine = _get(iw, "reader", f"{flow}/anomalies", window=10).json()  # the reader's 10th run is too early
    assert mine == []


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("nodes", {"start": "yesterday"}, "start"),
        ("nodes", {"end": "2026-13-01"}, "end"),
        ("nodes", {"start": "2026-03-02T00:00:00", "end": "2026-03-01T00:00:00"}, "start"),
        ("failures", {"limit": 0}, "limit"),
        ("failures", {"limit": 1001}, "limit"),
        ("reliability", {"start": "2026-03-01", "end": "2026-03-01"}, "start"),
        ("versions", {"min_runs": 1}, "min_runs"),
        ("versions", {"alpha": 0}, "alpha"),
        ("versions", {"alpha": "nan"}, "alpha"),
        ("anomalies", {"metric": "tokens"}, "metric"),
        ("anomalies", {"window": 3}, "window"),
        ("anomalies", {"window": 10**9}, "window"),
        ("anomalies", {"threshold": -1}, "threshold"),
        ("anomalies", {"threshold": "inf"}, "threshold"),
    ],
)
def test_bad_params_are_422_naming_the_field(
    iw: World, flow: str, route: str, params: dict, field: str
) -> None:
    r = _get(iw, "owner", f"{flow}/{route}", **params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    if isinstance(detail, list):
        assert any(field in err["loc"] for err in detail), detail
    else:
        assert field in detail
