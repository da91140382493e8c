"""Times in answers: epoch seconds where the contract says so, else RFC 3339 with a UTC offset.

Analytics keeps naive UTC datetimes (with microseconds). An answer's `date-time` must carry its
offset (RFC 3339 requires one, and a client would read a bare time as its local time), so every
datetime field of an answer is `UtcDateTime`: a naive value is UTC, an aware one is converted,
and either is written with `Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

_EPOCH = datetime(1970, 1, 1)


def epoch_seconds(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(seconds=1)


def epoch_or_none(value: datetime | None) -> int | None:
    return None if value is None else epoch_seconds(value)


def as_utc(value: datetime) -> datetime:
    """Naive means UTC (as analytics stores it); an aware value is converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
