"""Time as the store keeps it: naive UTC datetimes with microseconds.

One home for reading the clock and for the conversions, so that every room agrees on what a
naive datetime means (UTC, never local time) and answers write it the same way (`Z`, or epoch
seconds). Code that must be testable at a chosen time takes a `clock` callable defaulting to
`utc_now` rather than calling it directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)


def utc_now() -> datetime:
    """Now, as the store keeps times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_now_aware() -> datetime:
    """Now with its UTC offset attached, for state that is shown as it is (the scheduler's)."""
    return datetime.now(UTC)


def naive_utc(value: datetime) -> datetime:
    """An aware time converted to UTC with the offset dropped; a naive one is UTC already."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


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
