"""Retention policies: the rules, their validation, and where they are stored.

One global policy (stored under the flow id `*`) and optional per-flow policies. A flow's own
policy replaces the global one for that flow as a whole (no field-by-field inheritance: what a
flow keeps is readable from one row). A rule left unset (None) means no limit; the default
global policy keeps everything.

A run is deleted when it is older than its status' maximum age (`failed_max_age_days` for
error/aborted runs, `max_age_days` otherwise) or is not among the flow's newest `keep_last`
runs. Runs older than `payload_ttl_days` lose their heavy JSON (inputs, outputs, node_results)
but keep their row. Annotated runs (a note, tags or a rating) are never deleted or trimmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from analytics.access.permissions import FLOW_NOT_FOUND, Viewer, require_flow_access
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound
from analytics.core.numbers import MAX_COUNT
from analytics.core.store import Connection

GLOBAL = "*"
MAX_DAYS = 365_000.0  # a thousand years: beyond it a timestamp cutoff would overflow
MAX_KEEP = MAX_COUNT  # as every count the API takes (past 2**53 no count is a real one)


class PolicyFields(TypedDict):
    """A policy as JSON: typed per key so `PolicyOut(**policy.as_dict())` type-checks."""

    max_age_days: float | None
    failed_max_age_days: float | None
    keep_last: int | None
    payload_ttl_days: float | None
    archive: bool


@dataclass(frozen=True, slots=True)
class Policy:
    max_age_days: float | None = None
    failed_max_age_days: float | None = None
    keep_last: int | None = None
    payload_ttl_days: float | None = None
    # archive to Parquet before deleting or trimming (the policy may say not to)
    archive: bool = True

    def failed_age(self) -> float | None:
        """Error and aborted runs fall back to `max_age_days` when no separate age is set."""
        return self.failed_max_age_days if self.failed_max_age_days is not None else self.max_age_days

    @property
    def empty(self) -> bool:
        return (
            self.max_age_days is None
            and self.failed_max_age_days is None
            and self.keep_last is None
            and (self.payload_ttl_days is None)
        )

    def as_dict(self) -> PolicyFields:
        return PolicyFields(
            max_age_days=self.max_age_days,
            failed_max_age_days=self.failed_max_age_days,
            keep_last=self.keep_last,
            payload_ttl_days=self.payload_ttl_days,
            archive=self.archive,
        )


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    flow_id: str  # `*` for the global policy
    policy: Policy
    updated_by: str
    updated_at: datetime


def _days(value: float | None, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number of days", field=field)
    if value <= 0:
        raise InvalidInput(f"{field} must be more than 0 days (leave it unset for no limit)", field=field)
    if value > MAX_DAYS:
        raise InvalidInput(f"{field} must be at most {MAX_DAYS:g} days", field=field)


def validate(policy: Policy) -> Policy:
    """Raise InvalidInput naming the first bad field; answer the policy unchanged otherwise."""
    _days(policy.max_age_days, "max_age_days")
    _days(policy.failed_max_age_days, "failed_max_age_days")
    _days(policy.payload_ttl_days, "payload_ttl_days")
    if policy.keep_last is not None:
        if isinstance(policy.keep_last, bool) or not isinstance(policy.keep_last, int):
            raise InvalidInput("keep_last must be a whole number of runs", field="keep_last")
        if policy.keep_last < 1:
            raise InvalidInput(
                "keep_last must be at least 1 (leave it unset for no limit; to delete every run of a "
                "flow use DELETE /api/v1/flows/{flow_id}/executions)",
                field="keep_last",
            )
        if policy.keep_last > MAX_KEEP:
            raise InvalidInput(f"keep_last must be at most {MAX_KEEP}", field="keep_last")
    if (
        policy.failed_max_age_days is not None
        and policy.max_age_days is not None
        and policy.failed_max_age_days < policy.max_age_days
    ):
        raise InvalidInput(
            "failed_max_age_days must be at least max_age_days: failed runs are kept longer, not shorter",
            field="failed_max_age_days",
        )
    return policy


_COLUMNS = (
    "flow_id, max_age_days, failed_max_age_days, keep_last, payload_ttl_days, archive, updated_by, updated_at"
)


def _row(r: tuple[object, ...]) -> StoredPolicy:
    flow_id, max_age, failed_age, keep, ttl, archive, by, at = r
    return StoredPolicy(str(flow_id), Policy(max_age, failed_age, keep, ttl, bool(archive)), str(by), at)  # type: ignore[arg-type]


def load_all(conn: Connection) -> dict[str, StoredPolicy]:
    """Every stored policy by flow id (`*` is the global one)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM retention_policies").fetchall()
    return {r[0]: _row(r) for r in rows}


def effective(policies: dict[str, StoredPolicy], flow_id: str) -> Policy:
    found = policies.get(flow_id) or policies.get(GLOBAL)
    return found.policy if found else Policy()


def _check_flow(ctx: Context, viewer: Viewer, flow_id: str | None, *, write: bool) -> str:
    if flow_id is None:
        if write and not viewer.is_admin:
            raise AccessDenied("Only admins may change the global retention policy")
        if not write and not viewer.is_admin:
            raise AccessDenied("Only admins may read the global retention policy")
        return GLOBAL
    if flow_id == GLOBAL:
        raise InvalidInput("'*' is not a flow id", field="flow_id")
    # owners and admins set a flow's policy; anyone who reads the flow may see it
    require_flow_access(ctx.directory, viewer, flow_id, owner=write)
    return flow_id


def get_policy(ctx: Context, viewer: Viewer, flow_id: str | None = None) -> StoredPolicy | None:
    """The stored policy of a flow (None: it follows the global one), or the global policy."""
    key = _check_flow(ctx, viewer, flow_id, write=False)
    return ctx.store.read(load_all).get(key)


def set_policy(ctx: Context, viewer: Viewer, policy: Policy, flow_id: str | None = None) -> StoredPolicy:
    key = _check_flow(ctx, viewer, flow_id, write=True)
    validate(policy)
    stored = StoredPolicy(key, policy, viewer.id, utc_now())

    def upsert(c: Connection) -> bool:
        """False when the flow was deleted since it was checked: nothing is written."""
        if key != GLOBAL and not c.execute("SELECT 1 FROM flows WHERE id = ?", [key]).fetchall():
            return False
        c.execute(
            f"INSERT OR REPLACE INTO retention_policies ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key,
                policy.max_age_days,
                policy.failed_max_age_days,
                policy.keep_last,
                policy.payload_ttl_days,
                policy.archive,
                stored.updated_by,
                stored.updated_at,
            ],
        )
        return True

    if not ctx.store.write(upsert):
        raise NotFound(FLOW_NOT_FOUND)
    return stored


def delete_policy(ctx: Context, viewer: Viewer, flow_id: str | None = None) -> bool:
    """Remove a flow's own policy (it then follows the global one), or reset the global one."""
    key = _check_flow(ctx, viewer, flow_id, write=True)
    return bool(
        ctx.store.write(
            lambda c: c.execute(
                "DELETE FROM retention_policies WHERE flow_id = ? RETURNING 1", [key]
            ).fetchall()
        )
    )
