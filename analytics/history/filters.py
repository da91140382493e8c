"""Execution filters, defined once and compiled to SQL: search, counts and trends share them.

Modelled on Prefect's filter schemas: one leaf per column with operator fields (`any_`,
`after_`/`before_`, `ge_`/`le_`, `all_`, `contains_`), `extra="forbid"` so a misspelled
field is a 422 that names it, and every value a `?` parameter. Row visibility is not a filter
the caller can leave out: `visible_clause` is ANDed in by every query (access.py's rule, across
all flows the caller may read).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictBool, field_validator

from analytics.access.directory import Directory
from analytics.access.permissions import Viewer, grant_for
from analytics.core.clock import UtcTime, naive_utc
from analytics.core.errors import AccessDenied, InvalidInput
from analytics.core.numbers import Count, not_bool
from analytics.core.store import Connection, Store
from analytics.history.error_signature import MAX_SIGNATURE, signature_clause
from analytics.history.error_signature import Clause as Clause  # where every query's clauses are typed

_META_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")

# The text of a run's errors: every string value in `errors`, at any depth (`{"global": msg}`,
# `{node_id: msg}`, `{node_id: {"message": msg, "code": 429}}`, a nested `error`, the items of
# a list), never a key (`global`, node ids), a number, a boolean or the JSON's quotes and escapes.
ERROR_TEXTS = "[t ->> '$' FOR t IN json_extract(errors, '$..*') IF json_type(t) = 'VARCHAR']"
# What JSON escapes: a needle's other characters are written as they are in the stored text.
_ESCAPED = re.compile(r'["\\\x00-\x1f]+')


class _Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnyOf(_Leaf):
    any_: list[str] = Field(min_length=1, max_length=1000)


# A range whose ends are in the wrong order fits the schema: `ExecutionFilter.check` refuses it
# with a message (InvalidInput), as every other range ending before it starts is refused.
class TimeRange(_Leaf):
    after_: UtcTime | None = None
    before_: UtcTime | None = None


class MsRange(_Leaf):
    ge_: Count | None = Field(default=None, ge=0)
    le_: Count | None = Field(default=None, ge=0)


class Contains(_Leaf):
    contains_: str = Field(
        min_length=1,
        max_length=500,
        description="substring of an error message, case-insensitive (messages only: not keys or node ids)",
    )


class AllOf(_Leaf):
    all_: list[str] = Field(min_length=1, max_length=50)


class Signature(_Leaf):
    # empty is a value too: /failures has rows for a node whose id is "" and for an empty message
    node_id: str = Field(max_length=500, description='the node; "global" for a run-level error')
    equals_: str = Field(max_length=MAX_SIGNATURE, description="a `signature` of /failures")


_INLINE_VALUES = 32


class ExecutionFilter(BaseModel):
    """Every field is optional; given fields are ANDed."""

    model_config = ConfigDict(extra="forbid")

    flow_id: AnyOf | None = None
    status: AnyOf | None = None
    created_at: TimeRange | None = None
    execution_time: MsRange | None = None
    user_id: AnyOf | None = None
    flow_version: AnyOf | None = None
    node_id: AnyOf | None = Field(default=None, description="runs having any of these nodes")
    error_node: AnyOf | None = Field(
        default=None,
        description="runs where any of these nodes failed (named in `errors`, with a message or null,"
        " or its own status `error`): what /nodes counts as its errors",
    )
    model: AnyOf | None = Field(default=None, description="runs with a node using any of these models")
    error: Contains | None = None
    error_signature: Signature | None = Field(
        default=None,
        description="runs whose error at this node has this failure signature: the runs a /failures"
        " count counts",
    )
    tags: AllOf | None = Field(default=None, description="runs carrying all of these tags")
    has_note: StrictBool | None = None  # "yes" is not true
    rating: Annotated[Literal[-1, 1], BeforeValidator(not_bool)] | None = None  # true is not 1
    meta: dict[str, str] | None = Field(default=None, description="meta key = value, all must match")
    # the SQL of `error_signature`, read from the store by `resolved` (it needs the messages)
    _signature: Clause | None = PrivateAttr(default=None)

    @field_validator("status")
    @classmethod
    def _statuses(cls, v: AnyOf | None) -> AnyOf | None:
        if v is not None and (bad := set(v.any_) - {"success", "error", "aborted"}):
            raise ValueError(f"unknown status {sorted(bad)}; use success, error or aborted")
        return v

    @field_validator("meta")
    @classmethod
    def _meta_keys(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key in v or {}:
            if not _META_KEY.match(key):
                raise ValueError(f"meta key {key!r} must be 1-64 of A-Z a-z 0-9 _ . -")
        return v

    def check(self) -> None:
        """Refuse ranges whose ends are in the wrong order (a message, not a schema issue)."""
        span = self.created_at
        # compared as UTC: one side with an offset and one without (UTC) must not be a TypeError
        if span and span.after_ and span.before_ and naive_utc(span.after_) >= naive_utc(span.before_):
            raise InvalidInput("filter.created_at: after_ must be earlier than before_", field="created_at")
        ms = self.execution_time
        if ms and ms.ge_ is not None and ms.le_ is not None and ms.ge_ > ms.le_:
            raise InvalidInput(
                "filter.execution_time: ge_ must not be greater than le_", field="execution_time"
            )

    def resolved(self, c: Connection, visible: Clause) -> ExecutionFilter:
        """This filter ready for `clauses`: a signature names messages only the store knows, so
        those of the runs `visible` and the other fields admit are read and normalised here."""
        if self.error_signature is None or self._signature is not None:
            return self
        others = self.model_copy(update={"error_signature": None})
        match = self.error_signature
        ready = self.model_copy()
        ready._signature = signature_clause(
            c, where(visible, *others.clauses()), match.node_id, match.equals_
        )
        return ready

    def clauses(self) -> list[Clause]:
        self.check()
        out: list[Clause] = []

        def any_of(column: str, leaf: AnyOf | None) -> None:
            # a short list of parameters, not a semi-join against unnest(?): a single flow
            # then becomes `flow_id = ?`, which DuckDB answers through the flow_id index
            if leaf is not None and len(leaf.any_) <= _INLINE_VALUES:
                marks = ", ".join("?" * len(leaf.any_))
                out.append((f"{column} IN ({marks})", list(leaf.any_)))
            elif leaf is not None:
                out.append((f"{column} IN (SELECT unnest(?::VARCHAR[]))", [leaf.any_]))

        any_of("flow_id", self.flow_id)
        any_of("status", self.status)
        any_of("user_id", self.user_id)
        any_of("flow_version", self.flow_version)
        if self.created_at is not None:
            if self.created_at.after_ is not None:
                out.append(("created_at >= ?", [naive_utc(self.created_at.after_)]))
            if self.created_at.before_ is not None:
                out.append(("created_at < ?", [naive_utc(self.created_at.before_)]))
        if self.execution_time is not None:
            if self.execution_time.ge_ is not None:
                out.append(("execution_time >= ?", [self.execution_time.ge_]))
            if self.execution_time.le_ is not None:
                out.append(("execution_time <= ?", [self.execution_time.le_]))
        if self.node_id is not None:
            out.append(("list_has_any([n.node_id FOR n IN nodes], ?::VARCHAR[])", [self.node_id.any_]))
        if self.error_node is not None:
            out.append(
                (
                    "list_has_any([n.node_id FOR n IN nodes IF n.status = 'error'], ?::VARCHAR[])",
                    [self.error_node.any_],
                )
            )
        if self.model is not None:
            out.append(("list_has_any([n.model FOR n IN nodes], ?::VARCHAR[])", [self.model.any_]))
        if self.error is not None:
            out.append(error_clause(self.error.contains_))
        if self.error_signature is not None:
            if self._signature is None:
                raise RuntimeError("an error_signature filter is compiled after `resolved`")
            out.append(self._signature)
        for key, value in (self.meta or {}).items():
            out.append(("json_extract_string(meta, ?) = ?", [f'$."{key}"', value]))
        annotated = "id {} (SELECT execution_id FROM execution_annotations WHERE {})"
        if self.tags is not None:
            out.append((annotated.format("IN", "list_has_all(tags, ?::VARCHAR[])"), [self.tags.all_]))
        if self.has_note is not None:
            out.append(
                (annotated.format("IN" if self.has_note else "NOT IN", "coalesce(note, '') <> ''"), [])
            )
        if self.rating is not None:
            out.append((annotated.format("IN", "rating = ?"), [self.rating]))
        return out


def ready(store: Store, filter: ExecutionFilter | None, visible: Clause) -> ExecutionFilter:
    """`filter` (none: an empty one) ready for `clauses` over the runs `visible` admits."""
    f = filter or ExecutionFilter()
    if f.error_signature is None:
        return f
    return store.read(lambda c: f.resolved(c, visible))


def _fold(text: str) -> str:
    """`lower`, and a final sigma as any sigma: DuckDB lowers a capital sigma to the medial one
    everywhere, where a typed word ends in the final one, so neither spelling found the other."""
    return f"replace(lower({text}), '\u03c2', '\u03c3')"


def error_clause(needle: str) -> Clause:
    """Runs with an error text containing `needle`, case-insensitively (`_fold` both sides).

    Parsing every run's errors is ~3x the old text scan, so a cheap test runs first: each piece
    of the needle between JSON-escaped characters must occur in the stored text as it is. That
    holds for every match because `errors` is stored as orjson writes it (ingest.py), which
    escapes only `"`, `\\` and control characters, and `lower` maps character by character.
    """
    pieces = list(dict.fromkeys(p for p in _ESCAPED.split(needle) if p))
    exact = f"list_bool_or([contains({_fold('m')}, {_fold('?')}) FOR m IN {ERROR_TEXTS}])"
    cheap = " AND ".join(
        ["errors IS NOT NULL", *(f"contains({_fold('errors')}, {_fold('?')})" for _ in pieces)]
    )
    return f"CASE WHEN {cheap} THEN coalesce({exact}, false) ELSE false END", [*pieces, needle]


def visible_clause(directory: Directory, viewer: Viewer) -> Clause:
    """Runs this caller may see: every run of flows they own, write or administer, and their
    own runs of flows they may only read. In Open WebUI mode admins too see only the runs of
    flows the directory has: a flow gone from Open WebUI leaves its runs behind until the orphan
    job frees them, and from the moment it is gone they count as deleted."""
    if viewer.is_admin and not directory.external:
        return ("true", [])
    if directory.admins_only is not None:
        raise AccessDenied(directory.admins_only)
    all_runs: list[str] = []
    own_runs: list[str] = []
    for flow in directory.flows():
        grant = grant_for(directory, viewer, flow)
        if grant.sees_all:
            all_runs.append(flow.id)
        elif grant.read:
            own_runs.append(flow.id)
    return (
        "(flow_id IN (SELECT unnest(?::VARCHAR[]))"
        " OR (user_id = ? AND flow_id IN (SELECT unnest(?::VARCHAR[]))))",
        [all_runs, viewer.id, own_runs],
    )


def where(*clauses: Clause) -> Clause:
    """AND the clauses; no clause is TRUE."""
    parts = [c for c in clauses if c[0] != "true"]
    if not parts:
        return "true", []
    return " AND ".join(f"({s})" for s, _ in parts), [p for _, ps in parts for p in ps]
