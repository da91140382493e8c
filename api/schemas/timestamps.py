"""The contract answers epoch seconds; analytics keeps UTC datetimes with microseconds."""

from __future__ import annotations

from datetime import datetime, timedelta

_EPOCH = datetime(1970, 1, 1)


def epoch_seconds(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(seconds=1)


def epoch_or_none(value: datetime | None) -> int | None:
    return None if value is None else epoch_seconds(value)
