"""Retention over HTTP: who may do what, validation naming the field, the pass through the
scheduler's job, status and run log, restore."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.history.ingest import utc_now
from tests.factories import World, open_world, save_run
from tests.factories.disk import fill
from tests.factories.retention import all_rows

POLICY = "/api/v1/retention/policy"


def flow_policy(flow_id: str) -> str:
    return f"/api/v1/flows/{flow_id}/retention/policy"


def test_policy_access(world: World) -> None:
    c = world.client
    assert c.get(POLICY).status_code == 401
    assert c.get(POLICY, headers=world.h("owner")).status_code == 403
    assert c.put(POLICY, json={"max_age_days": 30}, headers=world.h("owner")).status_code == 403
    r = c.put(POLICY, json={"max_age_days": 30, "keep_last": 1000}, headers=world.h("admin"))
    assert r.status_code == 200, r.text
    assert (
        r.json()["max_age_days"] == 30 and r.json()["updated_by"] == "admin" and r.json()["flow_id"] is None
    )
    assert c.get(POLICY, headers=world.h("admin")).json()["keep_last"] == 1000

    # a flow's policy: owner or admin writes; readers (incl. write-grantees) read
    url = flow_policy(world.shared)
    assert c.get(url, headers=world.h("reader")).json()["inherited"] is True
    for user in ("reader", "writer", "stranger"):
        assert c.put(url, json={"keep_last": 5}, headers=world.h(user)).status_code == 403, user
    assert c.put(url, json={"keep_last": 5}, headers=world.h("owner")).status_code == 200
    got = c.get(url, headers=world.h("reader")).json()
    assert (got["keep_last"], got["inherited"], got["max_age_days"]) == (5, False, None)
    assert c.get(flow_policy(world.private), headers=world.h("reader")).status_code == 403
    assert c.get(flow_policy("nope"), headers=world.h("admin")).status_code == 404
    assert c.delete(url, headers=world.h("writer")).status_code == 403
    assert c.delete(url, headers=world.h("owner")).json() is True
    assert c.get(url, headers=world.h("owner")).json()["inherited"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_age_days": -3}, "max_age_days"),
        ({"max_age_days": 0}, "max_age_days"),
        ({"keep_last": 0}, "keep_last"),
        ({"keep_last": 2.5}, "keep_last"),
        ({"payload_ttl_days": "soon"}, "payload_ttl_days"),
        ({"max_age_days": 30, "failed_max_age_days": 7}, "failed_max_age_days"),
        ({"max_age": 30}, "max_age"),
    ],
)
def test_bad_policy_is_a_4xx_naming_the_field_and_changes_nothing(
    world: World, body: dict, field: str
) -> None:
    c = world.client
    assert c.put(POLICY, json={"max_age_days": 90}, headers=world.h("admin")).status_code == 200
    for url in (POLICY, flow_policy(world.shared)):
        r = c.put(url, json=body, headers=world.h("admin"))
        assert r.status_code == 422, r.text
        assert field in str(r.json()["detail"])
    assert c.get(POLICY, headers=world.h("admin")).json()["max_age_days"] == 90
    assert c.get(flow_policy(world.shared), headers=world.h("admin")).json()["inherited"] is True
    r = c.post("/api/v1/retention/dry-run", json={"policy": body}, headers=world.h("admin"))
    assert r.status_code == 422 and field in str(r.json()["detail"])


def test_dry_run_then_run_through_the_scheduler_job(world: World) -> None:
    c, ctx = world.client, world.ctx
    old = [
        save_run(world, world.shared, created_at=(utc_now() - timedelta(days=40 + i)).isoformat())
        for i in range(5)
    ]
    fresh = [save_run(world, world.shared) for _ in range(3)]
    assert c.put(POLICY, json={"max_age_days": 30}, headers=world.h("admin")).status_code == 200

    assert c.post("/api/v1/retention/dry-run", headers=world.h("owner")).status_code == 403
    assert (
        c.post(f"/api/v1/flows/{world.shared}/retention/dry-run", headers=world.h("writer")).status_code
        == 403
    )
    r = c.post(f"/api/v1/flows/{world.shared}/retention/dry-run", headers=world.h("owner"))
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["delete"] == 5 and set(dry["flows"][0]["delete_ids"]) == set(old)
    before = all_rows(ctx)
    assert set(before) >= set(old)  # the dry run deleted nothing

    assert c.post("/api/v1/retention/run", headers=world.h("owner")).status_code == 403
    r = c.post("/api/v1/retention/run", headers=world.h("admin"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["job"]["name"] == "retention" and out["job"]["last_ok"] is True
    assert out["result"]["deleted"] == 5
    after = all_rows(ctx)
    assert set(before) - set(after) == set(old) and set(fresh) <= set(after)
    stats = c.get(f"/api/v1/flows/{world.shared}/executions/stats", headers=world.h("owner")).json()
    assert stats["total_executions"] == len([i for i in after if after[i][0] == world.shared])

    status = c.get("/api/v1/retention/status", headers=world.h("admin")).json()
    assert status["last"]["summary"]["deleted"] == 5 and status["job"]["runs"] == 1
    runs = c.get("/api/v1/retention/runs?kind=retention", headers=world.h("admin")).json()
    assert runs[0]["ok"] is True
    assert runs[0]["trigger"] == "api"  # asked for, not the schedule's (it said "schedule")
    assert c.get("/api/v1/retention/runs?kind=nope", headers=world.h("admin")).status_code == 422

    # restore (admin): the deleted runs come back
    assert (
        c.post(
            "/api/v1/retention/restore",
            json={"start": "2000-01-01", "end": "2100-01-01"},
            headers=world.h("owner"),
        ).status_code
        == 403
    )
    bad = c.post(
        "/api/v1/retention/restore",
        json={"start": "2026-01-02", "end": "2026-01-01"},
        headers=world.h("admin"),
    )
    assert bad.status_code == 422 and "end" in bad.json()["detail"]
    r = c.post(
        "/api/v1/retention/restore",
        json={"start": "2000-01-01", "end": "2100-01-01"},
        headers=world.h("admin"),
    )
    assert r.status_code == 200 and r.json()["restored"] == 5
    assert all_rows(ctx) == before


def test_run_is_409_while_one_runs(world: World) -> None:
    from analytics.retention import runs

    for kind, running in [
        ("retention", "a retention pass"),  # was "a retention retention"
        ("compact", "a compaction"),
        ("restore", "a restore from the archive"),
    ]:
        with runs.exclusive(kind):
            r = world.client.post("/api/v1/retention/compact", headers=world.h("admin"))
            assert r.status_code == 409 and r.json()["detail"] == f"{running} is already running"


SOON_S = int((utc_now() + timedelta(hours=1)).timestamp())


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        # a number is epoch seconds, never milliseconds (these were read as ms)
        ("/api/v1/retention/dry-run", {"now": SOON_S * 1000}, ["body", "now"]),
        ("/api/v1/retention/restore", {"start": 0, "end": SOON_S * 1000}, ["body", "end"]),
        # a string is ISO 8601, not digits (they were read as epoch seconds, or ms)
        ("/api/v1/retention/dry-run", {"now": str(SOON_S)}, ["body", "now"]),
        ("/api/v1/retention/restore", {"start": "0", "end": "2100-01-01"}, ["body", "start"]),
        # in years 1-9999 as written, not in UTC (a 500: OverflowError)
        ("/api/v1/retention/dry-run", {"now": "0001-01-01T00:00:00+01:00"}, ["body", "now"]),
        ("/api/v1/retention/restore", {"start": "0001-01-01T00:00:00+01:00", "end": 0}, ["body", "start"]),
    ],
)
def test_times_are_epoch_seconds_or_iso_8601(
    world: World, path: str, body: dict[str, object], loc: list[str]
) -> None:
    r = world.client.post(path, json=body, headers=world.h("admin"))
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc], r.text


def test_a_dry_run_at_epoch_seconds_and_at_the_calendars_ends(world: World) -> None:
    assert (
        world.client.put(POLICY, json={"max_age_days": 365_000}, headers=world.h("admin")).status_code == 200
    )
    try:
        for now, answered in (
            (SOON_S, datetime.fromtimestamp(SOON_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
            (-62_135_596_800, "0001-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ):
            r = world.client.post("/api/v1/retention/dry-run", json={"now": now}, headers=world.h("admin"))
            assert r.status_code == 200, r.text
            assert r.json()["now"] == answered
    finally:
        world.client.put(POLICY, json={}, headers=world.h("admin"))


def test_a_pass_that_fails_on_a_full_archive_disk_is_a_507_not_a_200(
    tmp_path: Path, small_disk: Path
) -> None:
    """`POST /retention/run` waited for the job and answered 200 `{"ran": true, "result": null}`
    when the pass failed: a script checking the status saw success."""
    with contextmanager(open_world)(
        tmp_path, archive_dir=small_disk / "archive", disk_reserve="1MiB"
    ) as world:
        old = [
            save_run(world, world.shared, created_at=(utc_now() - timedelta(days=90)).isoformat())
            for _ in range(3)
        ]
        assert (
            world.client.put(POLICY, json={"max_age_days": 30}, headers=world.h("admin")).status_code == 200
        )
        before = all_rows(world.ctx)
        filler = fill(small_disk)
        r = world.client.post("/api/v1/retention/run", headers=world.h("admin"))
        assert r.status_code == 507, r.text
        assert r.json()["detail"].startswith("the archive folder's disk is full")
        assert all_rows(world.ctx) == before  # nothing deleted
        filler.unlink()
        r = world.client.post("/api/v1/retention/run", headers=world.h("admin"))
        assert r.status_code == 200 and r.json()["result"]["deleted"] == len(old), r.text
