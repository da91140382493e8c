"""Numbers in request bodies, where a JSON boolean is not one.

pydantic's lax mode reads `true` as 1 for an int or float field: an alert rule posted with
`"window": true` was stored with a one-second window, a price with `true` USD. Fields a caller
types as numbers use these instead of plain `int` / `float`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


# finite: `"threshold": "NaN"` (or "Infinity", "1e309") was read as a float, stored as null and
# never compared true: an alert rule that could not fire
Number = Annotated[float, BeforeValidator(not_bool), Field(allow_inf_nan=False)]
# past JavaScript's safe integers no count is a real one, and past 2**63 DuckDB cannot hold it
# (an alert rule's `min_runs` of 2**63 was a 500)
MAX_COUNT = 2**53
Count = Annotated[int, BeforeValidator(not_bool), Field(le=MAX_COUNT)]
