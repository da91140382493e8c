"""The metrics routes over HTTP: auth first, then bad input (422 naming the field, never 500),
then answers checked against counts over the runs the test stored, and visibility."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.access.permissions import Viewer
from analytics.history import ingest
from tests.factories import World, bearer, make_execution

START = datetime(2025, 3, 10)
END = datetime(2025, 3, 17)
STATUSES = ("success", "error", "aborted", "success")


def epoch(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1)).total_seconds())


def seed(w: World) -> list[dict[str, Any]]:
    """Runs on every flow of the world, by owner and reader; one day in the range left empty."""
    items = []
    for i in range(56):
        t = START - timedelta(days=7) + timedelta(hours=6 * i, minutes=7)
        if datetime(2025, 3, 12) <= t < datetime(2025, 3, 13):
            continue
        for flow_id, user in (
            (w.shared, "owner"),
            (w.shared, "reader"),
            (w.private, "owner"),
            (w.public, "reader"),
        ):
            items.append(
                make_execution(
                    flow_id,
                    status=STATUSES[i % 4],
                    execution_time=100 + i,
                    created_at=t.isoformat(),
                    user_id=user,
                )
            )
    saved = ingest.save_executions(w.ctx, Viewer("root", "admin"), items)
    assert all(r.status == "stored" for r in saved)
    return items


def count(items: list[dict[str, Any]], **match: Any) -> int:
    return sum(
        1
        for it in items
        if START <= datetime.fromisoformat(it["created_at"]) < END
        and all(it[k] == v for k, v in match.items())
    )


BODY = {
    "measures": ["runs", "error", "failure_rate", "p95_duration"],
    "start": "2025-03-10T00:00:00Z",
    "end": "2025-03-17T00:00:00Z",
    "bucket": "day",
}


def post(client: TestClient, user: str | None, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/metrics", json=body, headers=bearer(user) if user else {})


class TestQueryMetrics:
    def test_anonymous(self, world: World) -> None:
        assert post(world.client, None, BODY).status_code == 401

    def test_pending_user_is_refused(self, world: World) -> None:
        assert post(world.client, "pending", BODY).status_code in (401, 403)

    @pytest.mark.parametrize("end", ["2025-03-01T00:00:00Z", "2025-03-10T00:00:00Z"])
    def test_a_range_ending_before_it_starts_is_a_message(self, world: World, end: str) -> None:
        r = post(world.client, "owner", {**BODY, "end": end})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == "start must be earlier than end"

    @pytest.mark.parametrize(
        ("change", "loc"),
        [
            ({"measures": ["speed"]}, ["body", "measures", 0]),
            ({"measures": []}, ["body", "measures"]),
            ({"measures": None}, ["body", "measures"]),
            ({"start": "soon"}, ["body", "start"]),
            ({"start": None}, ["body", "start"]),
            ({"start": "1900-01-01T00:00:00Z"}, ["body", "start"]),
            ({"end": 10**15}, ["body", "end"]),
            ({"bucket": "fortnight"}, ["body", "bucket"]),
            ({"bucket": "hour", "end": "2025-08-01T00:00:00Z"}, ["body", "bucket"]),
            ({"group_by": "colour"}, ["body", "group_by"]),
            ({"group_by": ["flow"]}, ["body", "group_by"]),
            ({"max_groups": 1000}, ["body", "max_groups"]),
            ({"previous": []}, ["body", "previous"]),
            ({"filter": {"nope": 1}}, ["body", "filter", "nope"]),
            ({"filter": {"status": {"any_": ["lost"]}}}, ["body", "filter", "status"]),
            ({"filter": {"created_at": {"after_": "x"}}}, ["body", "filter", "created_at", "after_"]),
            ({"filter": {"meta": {"bad key": "v"}}}, ["body", "filter", "meta"]),
            ({"filter": []}, ["body", "filter"]),
            ({"sql": "drop"}, ["body", "sql"]),
        ],
    )
    def test_bad_input_is_422_naming_the_field(
        self, world: World, change: dict[str, Any], loc: list[Any]
    ) -> None:
        r = post(world.client, "owner", {**BODY, **change})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][: len(loc)] == loc

    def test_not_json_is_422(self, world: World) -> None:
        r = world.client.post(
            "/api/v1/metrics",
            content=b"{not json",
            headers={**bearer("owner"), "content-type": "application/json"},
        )
        assert r.status_code == 422 and isinstance(r.json()["detail"], list)

    def test_answer_shape_and_counts(self, world: World) -> None:
        items = seed(world)
        r = post(world.client, "owner", BODY)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["bucket"] == "day" and body["group_by"] is None
        assert (body["start"], body["end"]) == (epoch(START), epoch(END))
        assert body["previous_start"] == epoch(START - (END - START))
        assert body["percentiles_approximate"] is False
        assert [row["bucket"] for row in body["rows"]] == [epoch(START + timedelta(days=i)) for i in range(7)]
        empty = next(row for row in body["rows"] if row["bucket"] == epoch(datetime(2025, 3, 12)))
        assert empty == {
            "bucket": empty["bucket"],
            "runs": 0,
            "error": 0,
            "failure_rate": None,  # a gap, not a zero
            "p95_duration": None,
        }
        (total,) = body["totals"]
        assert total["group"] is None
        runs = total["measures"]["runs"]
        assert runs["value"] == count(items) == sum(row["runs"] for row in body["rows"])
        assert total["measures"]["error"]["value"] == count(items, status="error")
        assert runs["change"] == runs["value"] - runs["previous"]
        assert runs["change_rel"] == pytest.approx(runs["change"] / runs["previous"])

    def test_reader_sees_only_own_runs(self, world: World) -> None:
        items = seed(world)
        body = post(world.client, "reader", {**BODY, "group_by": "user", "measures": ["runs"]}).json()
        assert [t["group"] for t in body["totals"]] == ["reader"]
        assert body["totals"][0]["measures"]["runs"]["value"] == count(items, user_id="reader")
        by_flow = post(world.client, "reader", {**BODY, "group_by": "flow", "measures": ["runs"]}).json()
        assert {t["group"] for t in by_flow["totals"]} == {world.shared, world.public}
        writer = post(world.client, "writer", {**BODY, "group_by": "user", "measures": ["runs"]}).json()
        assert {t["group"] for t in writer["totals"]} == {
            "owner",
            "reader",
        }  # write grant: all runs of shared

    def test_stranger_sees_nothing_of_flows_they_may_not_read(self, world: World) -> None:
        seed(world)
        for group_by in ("flow", "user", "status", "node", "model", "flow_version"):
            body = post(world.client, "stranger", {**BODY, "group_by": group_by, "measures": ["runs"]}).json()
            assert body["totals"] == [] and body["rows"] == [], group_by
        asked = {**BODY, "measures": ["runs"], "filter": {"flow_id": {"any_": [world.private, world.shared]}}}
        body = post(world.client, "stranger", asked).json()
        assert body["totals"][0]["measures"]["runs"]["value"] == 0
        assert all(row["runs"] == 0 for row in body["rows"])

    def test_admin_sees_every_flow(self, world: World) -> None:
        items = seed(world)
        body = post(world.client, "admin", {**BODY, "group_by": "flow", "measures": ["runs"]}).json()
        got = {t["group"]: t["measures"]["runs"]["value"] for t in body["totals"]}
        assert got == {f: count(items, flow_id=f) for f in (world.shared, world.private, world.public)}


def trend(w: World, user: str | None, flow_id: str, **params: Any) -> Any:
    query = {"start": "2025-03-10T00:00:00Z", "end": "2025-03-17T00:00:00Z", **params}
    return w.client.get(f"/api/v1/flows/{flow_id}/trend", params=query, headers=bearer(user) if user else {})


class TestFlowTrend:
    def test_anonymous(self, world: World) -> None:
        assert trend(world, None, world.shared).status_code == 401

    def test_stranger_is_403_and_unknown_flow_404(self, world: World) -> None:
        r = trend(world, "stranger", world.private)
        assert r.status_code == 403 and r.json() == {
            "detail": "You do not have permission to access this flow"
        }
        r = trend(world, "owner", "no-such-flow")
        assert r.status_code == 404 and r.json() == {"detail": "Flow not found"}
        assert trend(world, "stranger", world.shared).status_code == 403

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"start": "when"}, ["query", "start"]),
            ({"end": "2999-01-01"}, ["query", "end"]),
            ({"bucket": "decade"}, ["query", "bucket"]),
            ({"bucket": "hour", "end": "2026-01-01"}, ["query", "bucket"]),
            ({"measures": "runs,speed"}, ["query", "measures", 1]),
            ({"measures": ","}, ["query", "measures"]),
            ({"group_by": "colour"}, ["query", "group_by"]),
        ],
    )
    def test_bad_params_are_422_naming_the_field(
        self, world: World, params: dict[str, Any], loc: list[Any]
    ) -> None:
        r = trend(world, "owner", world.shared, **params)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][: len(loc)] == loc

    @pytest.mark.parametrize("end", ["2025-03-01", "2025-03-10T00:00:00Z"])
    def test_a_range_ending_before_it_starts_is_a_message(self, world: World, end: str) -> None:
        r = trend(world, "owner", world.shared, end=end)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == "start must be earlier than end"

    def test_missing_range_is_422(self, world: World) -> None:
        r = world.client.get(f"/api/v1/flows/{world.shared}/trend", headers=bearer("owner"))
        assert r.status_code == 422
        assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("query", "start"), ("query", "end")}

    def test_counts_of_the_flow_only(self, world: World) -> None:
        items = seed(world)
        r = trend(world, "owner", world.shared, measures="runs,error", bucket="day")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["measures"] == ["runs", "error"]
        assert sum(row["runs"] for row in body["rows"]) == count(items, flow_id=world.shared)
        assert body["totals"][0]["measures"]["error"]["value"] == count(
            items, flow_id=world.shared, status="error"
        )
        repeated = world.client.get(
            f"/api/v1/flows/{world.shared}/trend",
            params=[
                ("start", epoch(START)),
                ("end", epoch(END)),
                ("measures", "runs"),
                ("measures", "error"),
                ("bucket", "day"),
            ],
            headers=bearer("owner"),
        ).json()
        assert repeated["rows"] == body["rows"]

    def test_reader_sees_own_runs_and_grouping(self, world: World) -> None:
        items = seed(world)
        body = trend(world, "reader", world.shared, group_by="user").json()
        assert [t["group"] for t in body["totals"]] == ["reader"]
        assert body["totals"][0]["measures"]["runs"]["value"] == count(
            items, flow_id=world.shared, user_id="reader"
        )
        assert body["bucket"] == "6 hours"  # auto: 7 days is ~28 six-hour buckets
