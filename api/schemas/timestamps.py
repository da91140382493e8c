"""Times in answers: epoch seconds where the contract says so, else RFC 3339 with a UTC offset.

Analytics keeps naive UTC datetimes (with microseconds). Every answer field the contract gives
in epoch seconds (`created_at`, `updated_at`, `last_execution_at`, ...) is `EpochSeconds`: the
response model reads the library's datetime and holds whole seconds, floored, so the JSON is an
integer. Other datetime fields are `UtcDateTime`: an answer's `date-time` must carry its offset
(RFC 3339 requires one, and a client would read a bare time as its local time), so a naive
value is UTC, an aware one is converted, and either is written with `Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since 1970-01-01 UTC, floored (a naive value is UTC, as analytics stores it)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (value - _EPOCH) // _SECOND


def _epoch_or_int(value: Any) -> Any:
    return epoch_seconds(value) if isinstance(value, datetime) else value


def as_utc(value: datetime) -> datetime:
    """Naive means UTC (as analytics stores it); an aware value is converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


EpochSeconds = Annotated[int, BeforeValidator(_epoch_or_int)]
"""A library datetime, answered as integer epoch seconds (an int is taken as it is)."""

UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
