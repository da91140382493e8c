"""Numbers in request bodies: a JSON number, never a boolean or a string.

pydantic's lax mode reads `true` as 1 for an int or float field: an alert rule posted with
`"window": true` was stored with a one-second window, a price with `true` USD. It also reads a
string as a number (`"1_000"`, `" +5 "`, `"0.5"`), which the contract's `execution_time` and
every schema here call a number. Fields a caller types as numbers use these instead of plain
`int` / `float`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def json_number(value: Any) -> Any:
    """A JSON number only: a string of digits is text, however it reads (`"1_000"` was 1000)."""
    value = not_bool(value)
    if isinstance(value, str | bytes | bytearray):
        raise ValueError("must be a JSON number, not a string")
    return value


def finite(value: Any) -> Any:
    """Say "finite" before a bound does: `le` is checked first, so NaN read "less than 1000000"."""
    if isinstance(value, str | bytes | bytearray):  # `"NaN"` was read as a float
        raise ValueError("must be a finite JSON number, not a string")
    value = not_bool(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# finite: `"threshold": "NaN"` (or "Infinity", "1e309") was read as a float, stored as null and
# never compared true: an alert rule that could not fire
Number = Annotated[float, BeforeValidator(finite), Field(allow_inf_nan=False)]
# past JavaScript's safe integers no count is a real one, and past 2**63 DuckDB cannot hold it
# (an alert rule's `min_runs` of 2**63 was a 500)
MAX_COUNT = 2**53
Count = Annotated[int, BeforeValidator(json_number), Field(le=MAX_COUNT)]
