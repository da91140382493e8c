"""The one clock: naive UTC everywhere, whatever the machine's time zone."""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics.access import users
from analytics.core import clock
from analytics.core.context import Context

TOKYO = timezone(timedelta(hours=9))


@pytest.fixture
def tokyo() -> Iterator[None]:
    """The process runs in a zone nine hours from UTC, as a server outside UTC would."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize(
    "value",
    [
        datetime(1970, 1, 1),
        datetime(2026, 11, 30, 23, 59, 59, 999_999),
        datetime(1969, 12, 31, 23, 59, 59, 500_000),
        datetime(2200, 1, 1, 0, 0, 0, 1),
    ],
)
def test_epoch_conversions_agree_with_calendar(value: datetime) -> None:
    whole = calendar.timegm(value.timetuple())  # independent: the C library's UTC calendar
    assert clock.epoch_seconds(value) == whole
    assert clock.epoch_micros(value) == whole * 1_000_000 + value.microsecond
    assert clock.from_epoch_micros(clock.epoch_micros(value)) == value
    assert clock.from_epoch_seconds(whole) == value.replace(microsecond=0)


def test_aware_values_are_converted_naive_ones_taken_as_utc(tokyo: None) -> None:
    naive = datetime(2026, 3, 1, 0, 30)
    aware = datetime(2026, 3, 1, 9, 30, tzinfo=TOKYO)  # the same instant
    assert clock.naive_utc(naive) == naive
    assert clock.naive_utc(aware) == naive
    assert clock.iso_utc(aware) == clock.iso_utc(naive) == "2026-03-01T00:30:00Z"
    assert clock.epoch_seconds(aware) == clock.epoch_seconds(naive) == int(aware.timestamp())
    assert clock.file_stamp(aware) == "20260301T003000Z"


def test_now_is_utc_not_local_time(tokyo: None) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    now = clock.utc_now()
    aware = clock.utc_now_aware()
    after = datetime.now(UTC).replace(tzinfo=None)
    assert now.tzinfo is None and before <= now <= after
    assert aware.utcoffset() == timedelta(0) and before <= aware.replace(tzinfo=None) <= after


def test_an_api_key_is_stamped_in_utc_on_a_machine_outside_utc(ctx: Context, tokyo: None) -> None:
    users.create_user(ctx, "kim", role="user")
    before = clock.utc_now()
    _, record = users.create_api_key(ctx, "kim", name="ci")
    after = clock.utc_now()
    assert before <= record.created_at <= after
    (listed,) = users.list_api_keys(ctx, user_id="kim")
    assert listed.created_at == record.created_at  # the answer and the stored row agree
