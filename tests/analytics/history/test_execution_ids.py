"""Run ids are UUIDv7 (RFC 9562): the version and variant bits intact, the run's millisecond
time in the first 48 bits, so ids grow with time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from analytics.history.ingest import new_execution_id


def test_ids_are_uuid7_with_the_runs_millisecond_time() -> None:
    start = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
    for i in range(5000):
        at = start + timedelta(milliseconds=7 * i, microseconds=i % 1000)
        u = uuid.UUID(new_execution_id(at))
        assert u.version == 7 and u.variant == uuid.RFC_4122, u
        assert u.int >> 80 == int(at.timestamp() * 1000), (u, at)


def test_ids_of_later_runs_sort_after_earlier_ones() -> None:
    start = datetime(2026, 12, 6, tzinfo=UTC)
    ids = [new_execution_id(start + timedelta(milliseconds=i)) for i in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
