"""Time as the store keeps it: naive UTC datetimes with microseconds.

One home for reading the clock and for the conversions, so that every room agrees on what a
naive datetime means (UTC, never local time) and answers write it the same way (`Z`, or epoch
seconds). Code that must be testable at a chosen time takes a `clock` callable defaulting to
`utc_now` rather than calling it directly.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
# the epoch seconds of datetime's first and last second (0001-01-01, 9999-12-31T23:59:59)
_EPOCH_FIRST = (datetime.min - EPOCH) // _SECOND
_EPOCH_LAST = (datetime.max - EPOCH) // _SECOND
# what pydantic would read as a number in a string (and then as milliseconds from 2e10)
_DIGITS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def utc_now() -> datetime:
    """Now, as the store keeps times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_now_aware() -> datetime:
    """Now with its UTC offset attached, for state that is shown as it is (the scheduler's)."""
    return datetime.now(UTC)


def naive_utc(value: datetime) -> datetime:
    """An aware time converted to UTC with the offset dropped; a naive one is UTC already."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def in_utc(value: datetime) -> datetime:
    """`naive_utc` for a time from outside: ValueError (a 422 naming it, in a model) when its
    offset takes it out of years 1-9999, where Python's datetime ends."""
    try:
        return naive_utc(value)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside years 1-9999 once converted to UTC") from None


def from_epoch_input(seconds: float) -> datetime:
    """Epoch seconds from outside as naive UTC; ValueError outside years 1-9999. Never
    milliseconds: pydantic reads a number from 2e10 up as milliseconds, silently another time."""
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError("epoch seconds must be a finite number")
    if not _EPOCH_FIRST <= seconds < _EPOCH_LAST + 1:
        raise ValueError(
            f"epoch seconds must be from {_EPOCH_FIRST} (0001-01-01) to {_EPOCH_LAST} (9999-12-31)"
            " (milliseconds are not read)"
        )
    try:
        return EPOCH + timedelta(seconds=seconds)
    except OverflowError:  # rounded up past the last microsecond
        raise ValueError(f"epoch seconds must be below {_EPOCH_LAST + 1}") from None


def _json_time(value: Any) -> Any:
    """A time in JSON: a number is epoch seconds; a string is ISO 8601 (pydantic's), and a
    string of digits is refused: "20261201" may be a date (ISO 8601 basic) or epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch_input(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        raise ValueError(
            "a string of digits is not a time: send epoch seconds as a number,"
            " or ISO 8601 such as 2026-12-01T00:00:00Z"
        )
    return value


def _query_time(value: Any) -> Any:
    """A time in a query string: digits are epoch seconds (a query has no numbers), else ISO 8601."""
    return _json_time(query_time_value(value) if isinstance(value, str) else value)


def query_time_value(value: str) -> Any:
    """A query string's time as JSON would carry it: digits as the number they are, else as is
    (for a model taking `UtcTime` from query parameters)."""
    if _DIGITS.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # a fraction, or more digits than int() reads: out of range anyway
            return float(value)
    return value


# A time a caller sends in a JSON body: epoch seconds (a number) or ISO 8601 (a string; UTC when
# it has no offset); held as naive UTC. Outside years 1-9999, in UTC: a ValueError (FastAPI's 422).
# Both forms are declared (OpenAPI said date-time only, and a fuzzer read each number the server
# took as a schema violation).
_TIME_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number", "description": "epoch seconds"}]}
)
UtcTime = Annotated[datetime, BeforeValidator(_json_time), AfterValidator(in_utc), _TIME_SCHEMA]
# The same in a query string, where epoch seconds are digits.
QueryTime = Annotated[datetime, BeforeValidator(_query_time), AfterValidator(in_utc), _TIME_SCHEMA]


def shifted(value: datetime, delta: timedelta) -> datetime:
    """`value + delta` for a naive time, held at datetime's ends (years 1-9999) where it would
    overflow: a window reaching back from a time in year 1's first days starts at year 1."""
    try:
        return value + delta
    except OverflowError:
        return datetime.min if delta < timedelta(0) else datetime.max


def iso_utc(value: datetime) -> str:
    """ISO 8601 with `Z`: a naive value is UTC, an aware one is converted first."""
    return naive_utc(value).isoformat() + "Z"


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since 1970-01-01 UTC, rounded down (also before 1970)."""
    return (naive_utc(value) - EPOCH) // _SECOND


def from_epoch_seconds(seconds: float) -> datetime:
    """The naive UTC time of epoch seconds; never the machine's local time."""
    return EPOCH + timedelta(seconds=seconds)


def epoch_micros(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC: the store's own resolution, exact."""
    return (naive_utc(value) - EPOCH) // _MICROSECOND


def from_epoch_micros(micros: int) -> datetime:
    """The naive UTC time of epoch microseconds; OverflowError outside datetime's range."""
    return EPOCH + timedelta(microseconds=micros)


def file_stamp(value: datetime | None = None) -> str:
    """A UTC time for file names (`20261130T120000Z`): sorts as time, no characters to escape."""
    return naive_utc(value if value is not None else utc_now()).strftime("%Y%m%dT%H%M%SZ")
