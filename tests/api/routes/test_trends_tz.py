"""Buckets aligned to a chosen IANA zone, over HTTP, across both DST changes of 2025 in Berlin,
against a plain-Python zoneinfo computation; both exact paths (fetch and scan); bad zones 422."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics.access.permissions import Viewer
from analytics.history import ingest
from analytics.trends import metrics as trends
from tests.factories import World, bearer, make_execution

BERLIN = ZoneInfo("Europe/Berlin")
# DST starts 2025-03-30 (a 23-hour day) and ends 2025-10-26 (a 25-hour day)
RANGES = [
    (datetime(2025, 3, 24, tzinfo=BERLIN), datetime(2025, 4, 3, tzinfo=BERLIN)),
    (datetime(2025, 10, 20, tzinfo=BERLIN), datetime(2025, 11, 3, tzinfo=BERLIN)),
]


def _seed(w: World) -> list[tuple[datetime, int]]:
    """Runs of the shared flow spread over both ranges, many close to local midnights."""
    rng = random.Random(7)
    made, items = [], []
    for lo, hi in RANGES:
        span = int((hi - lo).total_seconds())
        for _ in range(150):
            t = lo + timedelta(seconds=rng.randrange(span))
            if rng.random() < 0.4:  # near a local midnight, on either side
                t = t.replace(hour=0, minute=0, second=0) + timedelta(
                    minutes=rng.choice([-61, -30, -1, 0, 1, 59])
                )
            at = t.astimezone(UTC).replace(tzinfo=None)
            ms = rng.randrange(10, 5000)
            made.append((at, ms))
            items.append(
                make_execution(w.shared, execution_time=ms, created_at=at.isoformat(), user_id="owner")
            )
    saved = ingest.save_executions(w.ctx, Viewer("root", "admin"), items)
    assert all(r.status == "stored" for r in saved)
    return made


def _local_start(at: datetime, bucket: str, zone: ZoneInfo) -> int:
    """Epoch seconds of the local midnight that starts `at`'s day, ISO week or month."""
    local = at.replace(tzinfo=UTC).astimezone(zone)
    day = local.date()
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    elif bucket == "month":
        day = day.replace(day=1)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


@pytest.fixture(params=["scan", "fetch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    small = request.param == "fetch"
    monkeypatch.setattr(trends, "_is_small", lambda ctx, q: small)
    return str(request.param)


@pytest.mark.parametrize("bucket", ["day", "week", "month"])
@pytest.mark.parametrize("route", ["metrics", "trend"])
def test_buckets_start_at_local_midnight_across_dst(world: World, path: str, bucket: str, route: str) -> None:
    made = _seed(world)
    for lo, hi in RANGES:
        window = [(at, ms) for at, ms in made if lo <= at.replace(tzinfo=UTC) < hi]
        want: dict[int, list[int]] = {}
        for at, ms in window:
            want.setdefault(_local_start(at, bucket, BERLIN), []).append(ms)
        if route == "metrics":
            body = {
                "measures": ["runs", "avg_duration"],
                "start": lo.isoformat(),
                "end": hi.isoformat(),
                "bucket": bucket,
                "tz": "Europe/Berlin",
                "filter": {"flow_id": {"any_": [world.shared]}},
            }
            r = world.client.post("/api/v1/metrics", json=body, headers=bearer("owner"))
        else:
            params = {"start": lo.isoformat(), "end": hi.isoformat(), "bucket": bucket, "tz": "Europe/Berlin"}
            params["measures"] = "runs,avg_duration"
            r = world.client.get(
                f"/api/v1/flows/{world.shared}/trend", params=params, headers=bearer("owner")
            )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["tz"] == "Europe/Berlin"
        rows = {row["bucket"]: row for row in answer["rows"]}
        # every bucket is a local midnight, consecutive, from the one holding `lo`
        first = _local_start(lo.astimezone(UTC).replace(tzinfo=None), bucket, BERLIN)
        assert min(rows) == first
        for b in rows:
            local = datetime.fromtimestamp(b, BERLIN)
            assert (local.hour, local.minute) == (0, 0), local
        assert {b for b, row in rows.items() if row["runs"]} == set(want)
        for b, mss in want.items():
            assert rows[b]["runs"] == len(mss), (bucket, datetime.fromtimestamp(b, BERLIN))
            assert rows[b]["avg_duration"] == pytest.approx(statistics.fmean(mss))
        if bucket == "day":  # the short and the long day
            lengths = {(b2 - b1) / 3600 for b1, b2 in zip(sorted(rows), sorted(rows)[1:], strict=False)}
            assert lengths == {23.0, 24.0} or lengths == {24.0, 25.0}


def test_utc_is_the_default_and_named_the_same(world: World) -> None:
    _seed(world)
    body = {
        "measures": ["runs"],
        "start": "2025-03-24T00:00:00Z",
        "end": "2025-04-03T00:00:00Z",
        "bucket": "day",
    }
    plain = world.client.post("/api/v1/metrics", json=body, headers=bearer("owner")).json()
    utc = world.client.post("/api/v1/metrics", json={**body, "tz": "UTC"}, headers=bearer("owner")).json()
    assert plain["tz"] == "UTC" and plain["rows"] == utc["rows"]
    assert all(row["bucket"] % 86400 == 0 for row in plain["rows"])


# right/...: a file ZoneInfo opens, with leap seconds: Paris's winter midnights were an hour off
@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "",
        "../etc/passwd",
        "Europe/Berlin\x00",
        "localtime",
        "right/Europe/Paris",
        "posixrules",
        "Factory",
    ],
)
def test_unknown_zone_is_422_naming_it(world: World, zone: str) -> None:
    body: dict[str, Any] = {"measures": ["runs"], "start": "2025-03-24", "end": "2025-04-03", "tz": zone}
    r = world.client.post("/api/v1/metrics", json=body, headers=bearer("owner"))
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "tz"]
    r = world.client.get(
        f"/api/v1/flows/{world.shared}/trend",
        params={"start": "2025-03-24", "end": "2025-04-03", "tz": zone},
        headers=bearer("owner"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "tz"]
