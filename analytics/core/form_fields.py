"""Field rules request forms share: a PATCH field that cannot be null, text that must say something.

A PATCH body leaves out what it keeps. Where a field needs a value, `null` is refused naming it:
read as "no change" it answered 200 for a body that changed nothing (a client that meant to
clear the field believed it had), and the document declared every such field nullable. Declare
the field `X | None = KEEP` (or `= keep(max_length=...)`) and name it in the model's
`_no_null = field_validator(..., mode="before")(refuse_null)` (alert rules and channels do).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo
from pydantic_core import PydanticCustomError


def _not_null(schema: dict[str, Any]) -> None:
    """The field's schema without its null branch: None there means "not given", not a value."""
    schema.pop("default", None)
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches


def keep(**constraints: Any) -> Any:
    """The `Field` of a PATCH field that needs a value (with its constraints): left out, kept."""
    return Field(default=None, json_schema_extra=_not_null, **constraints)


KEEP: Any = keep()


def refuse_null(value: Any, info: ValidationInfo) -> Any:
    """A before-validator: `null` is a 422 named by its field (`loc`), as every bad field is."""
    if value is None:
        raise PydanticCustomError(
            "not_null", f"{info.field_name} cannot be null: leave it out to keep it", {}
        )
    return value


def not_blank(value: str) -> str:
    """An after-validator for text a person reads (a name, a comment): spaces alone are none
    (`"   "` passed `min_length=1`, though an empty comment is refused)."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value
