"""`EpochSeconds`, the one type for epoch-second answers: floored whole seconds of the UTC instant."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from api.schemas.timestamps import EpochSeconds


class _Out(BaseModel):
    at: EpochSeconds
    maybe: EpochSeconds | None = None


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 1, 12, 0, 0, 999_999),  # microseconds are dropped, not rounded up
        datetime(1969, 12, 31, 23, 59, 59, 500_000),  # before 1970: floor, so -1, not 0
        datetime(2026, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))),  # aware: its UTC instant
    ],
)
def test_a_datetime_is_its_floored_utc_epoch_second(value: datetime) -> None:
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    expected = calendar.timegm(utc.timetuple())  # independent: whole seconds, microseconds ignored
    assert _Out(at=value).model_dump_json() == f'{{"at":{expected},"maybe":null}}'


def test_an_int_stays_and_none_stays_null() -> None:
    assert _Out(at=5, maybe=None).model_dump() == {"at": 5, "maybe": None}
    assert _Out.model_json_schema(mode="serialization")["properties"]["at"]["type"] == "integer"
