"""Numbers in request bodies, where a JSON boolean is not one.

pydantic's lax mode reads `true` as 1 for an int or float field: an alert rule posted with
`"window": true` was stored with a one-second window, a price with `true` USD. Fields a caller
types as numbers use these instead of plain `int` / `float`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def finite(value: Any) -> Any:
    """Say "finite" before a bound does: `le` is checked first, so `"NaN"` read "less than 1000000"."""
    value = not_bool(value)
    if isinstance(value, (float, str)):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic names it
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
    return value


# finite: `"threshold": "NaN"` (or "Infinity", "1e309") was read as a float, stored as null and
# never compared true: an alert rule that could not fire
Number = Annotated[float, BeforeValidator(finite), Field(allow_inf_nan=False)]
# past JavaScript's safe integers no count is a real one, and past 2**63 DuckDB cannot hold it
# (an alert rule's `min_runs` of 2**63 was a 500)
MAX_COUNT = 2**53
Count = Annotated[int, BeforeValidator(not_bool), Field(le=MAX_COUNT)]
