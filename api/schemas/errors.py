"""Error bodies as the app answers them: always JSON with a `detail`.

The app's own errors (analytics' error classes, the body limit) say what went wrong in one
string, as the peer's client reads them. Request validation is FastAPI's list of issues; a 422
may also be the app's own (a value that is well-formed but impossible), so its `detail` is
either.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ValidationIssue(BaseModel):
    """One issue of FastAPI's request validation (pydantic's error, located in the request)."""

    loc: list[str | int] = Field(description='where: "body", "query", "path" or "header", then the field')
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, naming the field or thing when there is one")


class ValidationErrorOut(BaseModel):
    detail: str | list[ValidationIssue] = Field(
        description="a list of issues when the request does not fit its schema; a message naming the "
        "field when it fits but means something impossible (a range that ends before it starts, a bad cursor)"
    )
