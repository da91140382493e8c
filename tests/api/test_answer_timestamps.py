"""Every RFC 3339 time in an answer carries its UTC offset, and means the instant it should.

The store keeps naive UTC; an answer that wrote it bare would read as the client's local time
(and is not a `date-time` by RFC 3339). Expected instants are computed here from what was sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import World, save_run

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def times_in(value: Any, path: str = "") -> dict[str, str]:
    """Every string in the answer that reads as a date and time, by where it is."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in times_in(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in times_in(item, f"{path}[{i}]").items()}
    return {path: value} if isinstance(value, str) and ISO.match(value) else {}


def aware(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, f"{text!r} has no UTC offset"
    return parsed


def test_retention_and_job_answers_carry_utc_offsets(world: World) -> None:
    c, admin = world.client, world.h("admin")
    save_run(world, world.shared)
    before = datetime.now(UTC) - timedelta(seconds=1)
    answers: dict[str, Any] = {}
    answers["policy"] = c.put("/api/v1/retention/policy", json={"max_age_days": 30}, headers=admin).json()
    answers["flow policy"] = c.put(
        f"/api/v1/flows/{world.shared}/retention/policy", json={"keep_last": 5}, headers=admin
    ).json()
    answers["dry run"] = c.post(
        "/api/v1/retention/dry-run", json={"now": "2030-01-01T02:00:00+02:00"}, headers=admin
    ).json()
    answers["run"] = c.post("/api/v1/retention/run", headers=admin).json()
    answers["restore"] = c.post(
        "/api/v1/retention/restore",
        json={"start": "2024-01-01T01:00:00+01:00", "end": "2024-01-02T00:00:00"},
        headers=admin,
    ).json()
    answers["runs"] = c.get("/api/v1/retention/runs", headers=admin).json()
    answers["status"] = c.get("/api/v1/retention/status", headers=admin).json()
    answers["jobs"] = c.get("/api/v1/jobs", headers=admin).json()
    after = datetime.now(UTC) + timedelta(seconds=1)

    found = {f"{name}{path}": text for name, body in answers.items() for path, text in times_in(body).items()}
    for where, text in found.items():
        assert aware(text), where
    # the instants: given ones converted to UTC, stored ones taken when the call ran
    assert aware(answers["dry run"]["now"]) == datetime(2030, 1, 1, tzinfo=UTC)
    assert aware(answers["restore"]["start"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert aware(answers["restore"]["end"]) == datetime(2024, 1, 2, tzinfo=UTC)
    assert before <= aware(answers["policy"]["updated_at"]) <= after
    assert before <= aware(answers["run"]["result"]["now"]) <= after
    assert {r["kind"] for r in answers["runs"]} == {"retention", "restore"}
    for record in answers["runs"]:
        assert before <= aware(record["started_at"]) <= aware(record["finished_at"]) <= after
    assert answers["status"]["last"]["id"] == answers["runs"][0]["id"]
    # every kind of time was seen, so the sweep above covered them
    assert {
        "dry run.now",
        "policy.updated_at",
        "run.result.now",
        "runs[0].started_at",
        "restore.start",
    } <= set(found)
