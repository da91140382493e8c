"""Notes, tags and a rating (up 1 / down -1) on an execution.

Who: anyone who may write the flow sets or clears them (the people who own the flow's quality);
anyone who may see the run reads them. One row per execution in `execution_annotations`, written
by the store's writer as an upsert, and searchable through `ExecutionFilter` (tags, has_note,
rating).

A run's annotation must die with the run. The upsert checks, in the same transaction, that the
run still exists in this flow, so none is written for a run deleted a moment before. Deletes in
history.py do not yet remove annotations, so every read here joins `executions` on id and
flow_id: a leftover row is never shown, even if an import later re-uses the run's id elsewhere.

PUT semantics: an update replaces the whole annotation (an omitted field is cleared). A blank
note is stored as no note, so `has_note` means what it says; tags are de-duplicated in order.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal, overload

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from analytics.access.permissions import Grant, Viewer, require_flow_access
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import NotFound
from analytics.core.store import Connection
from analytics.history.runs import EXECUTION_NOT_FOUND, Annotation

MAX_NOTE = 10_000
MAX_TAGS = 50
MAX_TAG = 64
TAG = re.compile(r"^\w[\w.:/+#-]*\Z")  # letters (any script), digits, _ and . : / + # - inside
_COLUMNS = "a.execution_id::VARCHAR, a.flow_id, a.note, a.tags, a.rating, a.updated_by, a.updated_at"


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be 1, -1 or null, not a boolean")
    return value


class AnnotationUpdate(BaseModel):
    """The whole annotation of a run; omitted fields are cleared."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=MAX_NOTE)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    rating: Annotated[Literal[-1, 1] | None, BeforeValidator(_no_bool)] = Field(
        default=None, description="1 up, -1 down, null none"
    )

    @field_validator("note")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v if v is not None and v.strip() else None

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not TAG.match(tag):
                raise ValueError(
                    f"tag {tag!r} must start with a letter, digit or _ and hold only those and . : / + # -"
                )
        return list(dict.fromkeys(v))


def _uuid(execution_id: str) -> str:
    try:
        return str(uuid.UUID(execution_id))
    except (ValueError, AttributeError, TypeError):
        raise NotFound(EXECUTION_NOT_FOUND) from None


def _require_visible(ctx: Context, grant: Grant, exec_id: str) -> None:
    where = "id = ? AND flow_id = ?"
    params: list[Any] = [exec_id, grant.flow.id]
    if grant.only_user is not None:
        where += " AND user_id = ?"
        params.append(grant.only_user)
    rows = ctx.store.read(lambda c: c.execute(f"SELECT 1 FROM executions WHERE {where}", params).fetchall())
    if not rows:
        raise NotFound(EXECUTION_NOT_FOUND)


def _read(ctx: Context, exec_id: str) -> Annotation | None:
    rows = ctx.store.read(
        lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM execution_annotations a"
            " JOIN executions e ON e.id = a.execution_id AND e.flow_id = a.flow_id"
            " WHERE a.execution_id = ?",
            [exec_id],
        ).fetchall()
    )
    return Annotation(*rows[0]) if rows else None


def annotations_for(ctx: Context, execution_id: str) -> Annotation | None:
    """For the execution detail, after its own access check: no check here."""
    try:
        exec_id = str(uuid.UUID(execution_id))
    except (ValueError, AttributeError, TypeError):
        return None
    return _read(ctx, exec_id)


NO_ANNOTATION = "This execution has no annotation"


@overload
def get_annotation(
    ctx: Context, viewer: Viewer, flow_id: str, execution_id: str, *, missing_ok: Literal[False]
) -> Annotation: ...
@overload
def get_annotation(
    ctx: Context, viewer: Viewer, flow_id: str, execution_id: str, *, missing_ok: bool = True
) -> Annotation | None: ...
def get_annotation(
    ctx: Context, viewer: Viewer, flow_id: str, execution_id: str, *, missing_ok: bool = True
) -> Annotation | None:
    """None when the run has none (NotFound with `missing_ok=False`, as the API answers);
    NotFound when the caller may not see the run."""
    grant = require_flow_access(ctx.directory, viewer, flow_id)
    exec_id = _uuid(execution_id)
    _require_visible(ctx, grant, exec_id)
    found = _read(ctx, exec_id)
    if found is None and not missing_ok:
        raise NotFound(NO_ANNOTATION)
    return found


def may_annotate(ctx: Context, viewer: Viewer, flow_id: str) -> None:
    """The contract's order before an annotation's body is read: the flow exists (NotFound),
    the caller may write it (AccessDenied); the body's 422 comes after them."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)


def set_annotation(
    ctx: Context, viewer: Viewer, flow_id: str, execution_id: str, update: AnnotationUpdate | dict[str, Any]
) -> Annotation:
    """Replace the run's annotation (write access to the flow); answered after the commit."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)
    exec_id = _uuid(execution_id)
    form = update if isinstance(update, AnnotationUpdate) else AnnotationUpdate.model_validate(update)
    saved = Annotation(exec_id, flow_id, form.note, form.tags, form.rating, viewer.id, utc_now())

    def upsert(c: Connection) -> bool:
        if not c.execute(
            "SELECT 1 FROM executions WHERE id = ? AND flow_id = ?", [exec_id, flow_id]
        ).fetchall():
            return False
        c.execute(
            "INSERT INTO execution_annotations"
            " (execution_id, flow_id, note, tags, rating, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (execution_id) DO UPDATE SET"
            " flow_id = excluded.flow_id, note = excluded.note, tags = excluded.tags,"
            " rating = excluded.rating, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            [exec_id, flow_id, saved.note, saved.tags, saved.rating, saved.updated_by, saved.updated_at],
        )
        return True

    if not ctx.store.write(upsert, after_commit=lambda _: ctx.annotated.add(exec_id)):
        raise NotFound(EXECUTION_NOT_FOUND)
    return saved


def delete_annotation(ctx: Context, viewer: Viewer, flow_id: str, execution_id: str) -> None:
    """Clear the run's annotation (write access); clearing one that is not there is fine."""
    require_flow_access(ctx.directory, viewer, flow_id, write=True)
    exec_id = _uuid(execution_id)

    def delete(c: Connection) -> bool:
        if not c.execute(
            "SELECT 1 FROM executions WHERE id = ? AND flow_id = ?", [exec_id, flow_id]
        ).fetchall():
            return False
        c.execute("DELETE FROM execution_annotations WHERE execution_id = ?", [exec_id])
        return True

    if not ctx.store.write(delete):
        raise NotFound(EXECUTION_NOT_FOUND)
