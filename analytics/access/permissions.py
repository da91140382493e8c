"""Who may do what to a flow, and which of its executions they see.

Flow access follows the contract: `access_control = null` is public read (owner and admins
write), `{}` is private, otherwise `{"read": {"group_ids", "user_ids"}, "write": {...}}`
grants; write implies read; admins pass every check. Row visibility fixes a peer bug: a
reader who is not owner, admin or write-grantee sees only the executions they saved, and that
rule is a WHERE clause (`Grant.row_filter`) so lists, stats and details cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.access.directory import Directory, FlowAcl
from analytics.core.errors import AccessDenied, NotFound

FLOW_NOT_FOUND = "Flow not found"
ACCESS_DENIED = "You do not have permission to access this flow"
OWNER_ONLY = "Only the flow's owner or an admin may do this"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller, as every analytics function sees it."""

    id: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Grant:
    flow: FlowAcl
    read: bool
    write: bool
    viewer: Viewer

    @property
    def sees_all(self) -> bool:
        return self.write

    @property
    def only_user(self) -> str | None:
        """The single user whose executions this caller sees, or None for all of them."""
        return None if self.sees_all else self.viewer.id


def _granted(ac: dict[str, Any], mode: str, user_id: str, groups: frozenset[str]) -> bool:
    """Only well-formed grants count: Open WebUI stores any object it is sent, and a string where
    a list belongs would otherwise grant by substring (`"al" in "alice"`)."""
    entry = ac.get(mode)
    if not isinstance(entry, dict):
        return False
    users, group_ids = entry.get("user_ids"), entry.get("group_ids")
    return (isinstance(users, list) and user_id in users) or (
        isinstance(group_ids, list) and any(isinstance(g, str) and g in groups for g in group_ids)
    )


def grant_for(directory: Directory, viewer: Viewer, flow: FlowAcl) -> Grant:
    if directory.admins_only is not None and not viewer.is_admin:
        raise AccessDenied(directory.admins_only)
    if viewer.is_admin or flow.owner_id == viewer.id:
        return Grant(flow, True, True, viewer)
    ac = flow.access_control
    if ac is None:
        return Grant(flow, True, False, viewer)
    if not isinstance(ac, dict):  # not null, not grants: private, as `{}`
        return Grant(flow, False, False, viewer)
    groups = directory.groups_of(viewer.id)
    write = _granted(ac, "write", viewer.id, groups)
    read = write or _granted(ac, "read", viewer.id, groups)
    return Grant(flow, read, write, viewer)


def require_flow_access(
    directory: Directory, viewer: Viewer, flow_id: str, *, write: bool = False, owner: bool = False
) -> Grant:
    """Check in the contract's order: the flow exists (NotFound), then access (AccessDenied)."""
    flow = directory.flow(flow_id)
    if flow is None:
        directory.check_missing()  # Open WebUI mode, its database unreadable: 503, not 404
        raise NotFound(FLOW_NOT_FOUND)
    grant = grant_for(directory, viewer, flow)
    is_owner = viewer.is_admin or flow.owner_id == viewer.id
    allowed = is_owner if owner else grant.write if write else grant.read
    if not allowed:
        # a reader or write-grantee may access the flow: the refusal says what they lack
        raise AccessDenied(OWNER_ONLY if owner and grant.read else ACCESS_DENIED)
    return grant


def readable_flow_ids(directory: Directory, viewer: Viewer) -> list[str]:
    return [f.id for f in directory.flows() if grant_for(directory, viewer, f).read]


def writable_flow_ids(directory: Directory, viewer: Viewer) -> list[str]:
    return [f.id for f in directory.flows() if grant_for(directory, viewer, f).write]
