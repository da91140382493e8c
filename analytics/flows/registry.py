"""The flow registry: the flows the client creates, their owner and their access control.

A flow's `access_control` may only be changed by its owner or an admin; write-grantees may
edit everything else (and send `access_control` back unchanged, as the editor's save does).
Deleting a flow deletes its executions in the same transaction (a peer bug on SQLite left them
behind). A duplicate is owned by the caller and starts private, named as asked or "<name> (copy)".
A flow's `meta` is always an object (`{}` when nothing was set), as the contract says.

In Open WebUI mode flows are Open WebUI's: its poller copies them in (`mirror_flows`, so each
run's flow_version names a definition kept in flow_versions) and creating, changing or deleting
one here is ManagedByOpenWebUI (409); reading, exporting and executing work as before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from analytics.access.directory import FlowAcl
from analytics.access.permissions import (
    FLOW_NOT_FOUND,
    Grant,
    Viewer,
    readable_flow_ids,
    require_flow_access,
    writable_flow_ids,
)
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, ManagedByOpenWebUI, NotFound
from analytics.core.flow_version import flow_version
from analytics.core.jsonio import stored_text
from analytics.core.store import Connection
from analytics.history import changes

_COLUMNS = (
    "id, user_id, name, description, nodes, edges, meta, access_control, created_at, updated_at, version"
)
NAME_MAX = 255  # characters in a flow's name (create, update, import and duplicate alike)
_COPY = " (copy)"
_EDITABLE = ("name", "description", "nodes", "edges", "meta", "access_control")


@dataclass(frozen=True, slots=True)
class Flow:
    id: str
    user_id: str
    name: str
    description: str | None
    nodes: list[Any]
    edges: list[Any]
    meta: dict[str, Any]
    access_control: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    version: str = ""


EXPORT_VERSION = "1.0"
EXECUTE_ANSWER = "Flow execution is handled client-side"


@dataclass(frozen=True, slots=True)
class FlowExport:
    """The export wrapper: what `POST /import` takes back."""

    flow: Flow
    exported_at: datetime
    version: str = EXPORT_VERSION


_JSON_FIELDS = ("nodes", "edges", "meta", "access_control")


def _check_json(fields: dict[str, Any]) -> None:
    """Serialise in the caller's thread, so a bad payload is a 422, not a failed write."""
    for field in _JSON_FIELDS:
        if field in fields:
            stored_text(fields[field], field)


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _row_to_flow(row: tuple[Any, ...]) -> Flow:
    fid, uid, name, desc, nodes, edges, meta, ac, created, updated, version = row
    return Flow(
        fid,
        uid,
        name,
        desc,
        _loads(nodes),
        _loads(edges),
        _loads(meta) or {},
        _loads(ac),
        created,
        updated,
        version,
    )


def _read(ctx: Context, ids: list[str]) -> list[Flow]:
    if not ids:
        return []
    rows = ctx.store.read(
        lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM flows WHERE id IN (SELECT unnest(?::VARCHAR[]))"
            " ORDER BY updated_at DESC, id",
            [ids],
        ).fetchall()
    )
    flows = [_row_to_flow(r) for r in rows]
    if not ctx.directory.external:
        return flows
    # Open WebUI mode: the owner is the one access is judged by. While Open WebUI's row has no
    # owner (NULL) the stored copy keeps the last one (to tell a new flow under the same id):
    # answered, it named a user with none of an owner's rights
    owners = {f.id: acl.owner_id for f in flows if (acl := ctx.directory.flow(f.id)) is not None}
    return [
        replace(f, user_id=owners[f.id]) if owners.get(f.id, f.user_id) != f.user_id else f for f in flows
    ]


def validate_access_control(ac: Any) -> dict[str, Any] | None:
    """null (public read), {} (private), or read/write grants of user_ids and group_ids."""
    if ac is None:
        return None
    if not isinstance(ac, dict):
        raise InvalidInput("access_control must be null or an object", field="access_control")
    for mode, entry in ac.items():
        if mode not in ("read", "write"):
            raise InvalidInput(f"access_control has unknown key {mode!r}", field="access_control")
        if not isinstance(entry, dict):
            raise InvalidInput(f"access_control.{mode} must be an object", field="access_control")
        for key, ids in entry.items():
            if key not in ("user_ids", "group_ids") or not isinstance(ids, list):
                raise InvalidInput(
                    f"access_control.{mode}.{key} is not a list of user_ids or group_ids",
                    field="access_control",
                )
            if not all(isinstance(i, str) for i in ids):
                raise InvalidInput(f"access_control.{mode}.{key} must hold strings", field="access_control")
    return ac


def create_flow(
    ctx: Context,
    viewer: Viewer,
    *,
    name: str,
    nodes: list[Any],
    edges: list[Any],
    description: str | None = None,
    meta: dict[str, Any] | None = None,
    access_control: dict[str, Any] | None = None,
    flow_id: str | None = None,
) -> Flow:
    _ours(ctx)
    now = utc_now()
    flow = Flow(
        flow_id or str(uuid.uuid4()),
        viewer.id,
        name,
        description,
        nodes,
        edges,
        meta or {},
        validate_access_control(access_control),
        now,
        now,
        flow_version(nodes, edges),
    )
    if ctx.directory.flow(flow.id) is not None:
        raise InvalidInput(f"flow {flow.id} already exists", field="id")
    _check_json({f: getattr(flow, f) for f in _JSON_FIELDS})
    ctx.store.write(lambda c: _insert(c, flow), after_commit=lambda _: _publish(ctx, flow))
    return flow


def _ours(ctx: Context) -> None:
    if ctx.directory.external:
        raise ManagedByOpenWebUI("flows")


def _publish(ctx: Context, flow: Flow) -> None:
    ctx.directory.put_flow(FlowAcl(flow.id, flow.user_id, flow.access_control, flow.version))


def _remember_version(conn: Connection, f: Flow) -> None:
    conn.execute(
        "INSERT INTO flow_versions VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [f.id, f.version, stored_text(f.nodes, "nodes"), stored_text(f.edges, "edges"), f.updated_at],
    )


def _insert(conn: Connection, f: Flow) -> None:
    _remember_version(conn, f)
    _insert_row(conn, f)


def _insert_row(conn: Connection, f: Flow) -> None:
    conn.execute(
        f"INSERT INTO flows ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            f.id,
            f.user_id,
            f.name,
            f.description,
            stored_text(f.nodes, "nodes"),
            stored_text(f.edges, "edges"),
            stored_text(f.meta, "meta"),
            stored_text(f.access_control, "access_control"),
            f.created_at,
            f.updated_at,
            f.version,
        ],
    )


def get_flow(ctx: Context, viewer: Viewer, flow_id: str) -> Flow:
    require_flow_access(ctx.directory, viewer, flow_id)
    return _read_one(ctx, flow_id)


def _read_one(ctx: Context, flow_id: str) -> Flow:
    """The flow's row; a 404 when a delete committed after the access check (the directory
    forgets the flow only in that delete's after-commit hook)."""
    found = _read(ctx, [flow_id])
    if not found:
        raise NotFound(FLOW_NOT_FOUND)
    return found[0]


def list_flows(ctx: Context, viewer: Viewer) -> list[Flow]:
    """Flows the caller owns or may write (the client's `GET /flows/`)."""
    return _read(ctx, writable_flow_ids(ctx.directory, viewer))


def list_accessible_flows(ctx: Context, viewer: Viewer) -> list[Flow]:
    """Flows the caller owns or may read."""
    return _read(ctx, readable_flow_ids(ctx.directory, viewer))


def may_update(ctx: Context, viewer: Viewer, flow_id: str) -> Grant:
    """Whether an update may be asked at all, in the contract's order: flows are ours (Open
    WebUI mode: 409), the flow exists (404), the caller may write it (403). The route asks
    before it reads the body, so a body that does not fit is not answered first."""
    _ours(ctx)
    return require_flow_access(ctx.directory, viewer, flow_id, write=True)


def update_flow(ctx: Context, viewer: Viewer, flow_id: str, changes: dict[str, Any]) -> Flow:
    """Apply the given fields; omitted fields stay as they are."""
    grant = may_update(ctx, viewer, flow_id)
    changes = {k: v for k, v in changes.items() if k in _EDITABLE}
    if "access_control" in changes:
        changes["access_control"] = validate_access_control(changes["access_control"])
        if not (viewer.is_admin or grant.flow.owner_id == viewer.id):
            if changes["access_control"] != grant.flow.access_control:
                raise AccessDenied("Only the flow's owner or an admin may change its access control")
            del changes["access_control"]  # the editor sends the flow back whole: not a change
    if "meta" in changes and changes["meta"] is None:
        changes["meta"] = {}
    _check_json(changes)

    def write(c: Connection) -> Flow | None:
        """The changes merged into the row as it is now, on the writer: two updates of other
        fields both hold (read before the queue, the second wrote the first's fields back as
        they were). None when the flow was deleted meanwhile: nothing is written."""
        rows = c.execute(f"SELECT {_COLUMNS} FROM flows WHERE id = ?", [flow_id]).fetchall()
        if not rows:
            return None
        current = _row_to_flow(rows[0])
        merged = {**{k: getattr(current, k) for k in _EDITABLE}, **changes}
        updated = Flow(
            current.id,
            current.user_id,
            created_at=current.created_at,
            updated_at=utc_now(),
            version=flow_version(merged["nodes"], merged["edges"]),
            **merged,
        )
        c.execute(
            "UPDATE flows SET name = ?, description = ?, nodes = ?, edges = ?, meta = ?,"
            " access_control = ?, updated_at = ?, version = ? WHERE id = ?",
            [
                updated.name,
                updated.description,
                stored_text(updated.nodes, "nodes"),
                stored_text(updated.edges, "edges"),
                stored_text(updated.meta, "meta"),
                stored_text(updated.access_control, "access_control"),
                updated.updated_at,
                updated.version,
                flow_id,
            ],
        )
        _remember_version(c, updated)
        return updated

    def published(updated: Flow | None) -> None:
        if updated is not None:  # a flow deleted meanwhile is not put back in the directory
            _publish(ctx, updated)

    updated = ctx.store.write(write, after_commit=published)
    if updated is None:
        raise NotFound(FLOW_NOT_FOUND)
    return updated


def delete_flow(ctx: Context, viewer: Viewer, flow_id: str) -> None:
    """Owner or admin only; the flow's executions and node facts go with it."""
    _ours(ctx)
    require_flow_access(ctx.directory, viewer, flow_id, owner=True)
    purge_flow(ctx, flow_id)


def purge_flow(ctx: Context, flow_id: str) -> int:
    """Delete a flow with its runs, annotations and versions, in one transaction (no access
    check: for delete_flow and for the job that frees the runs of flows gone from Open WebUI).
    Answers how many runs went."""

    def delete(c: Connection) -> int:
        changes.invalidate(c, "flow_id = ?", [flow_id])
        c.execute("DELETE FROM execution_annotations WHERE flow_id = ?", [flow_id])
        [(runs,)] = c.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [flow_id]).fetchall()
        count: int = runs
        c.execute("DELETE FROM executions WHERE flow_id = ?", [flow_id])
        c.execute("DELETE FROM flow_versions WHERE flow_id = ?", [flow_id])
        c.execute("DELETE FROM retention_policies WHERE flow_id = ?", [flow_id])  # it outlived the flow
        for sql in _FLOW_ALERTS:  # they outlived it too: a rule FIRING for a flow gone, its silences
            c.execute(sql, {"flow": flow_id})
        c.execute("DELETE FROM flows WHERE id = ?", [flow_id])
        return count

    def gone(_: int) -> None:
        ctx.directory.drop_flow(flow_id)
        ctx.notify_rules_changed()

    deleted: int = ctx.counters.write_recounting(
        ctx.store, delete, lambda _: [flow_id], after_commit=gone, frees_space=True
    )
    return deleted


# the flow's alerting, which lives in a room above (analytics/alerts): its rules with what hangs on
# them, then what other rules (a user's, over all their flows) and silences keep of this flow
_FLOW_RULES = "SELECT id FROM alert_rules WHERE flow_id = $flow"
_FLOW_ALERTS = (
    *(
        f"DELETE FROM {table} WHERE rule_id IN ({_FLOW_RULES})"
        for table in ("alert_rule_channels", "alert_states", "alert_transitions", "alert_silences")
    ),
    "DELETE FROM alert_rules WHERE flow_id = $flow",
    "DELETE FROM alert_states WHERE flow_id = $flow",
    "DELETE FROM alert_transitions WHERE flow_id = $flow",
    "DELETE FROM alert_silences WHERE flow_id = $flow",
)


def mirror_flows(ctx: Context, changed: list[Flow]) -> None:
    """Copy flows as an external source (Open WebUI) has them into the store, each definition
    remembered in flow_versions. A flow gone from the source keeps its row (and runs) until the
    orphan job purges them; the directory stops showing it at once."""

    if not changed:
        return
    # one statement a table: a row at a time, Open WebUI's 2,000 flows held the first sync (and
    # so the server's start) for 8 s
    texts = {
        k: [stored_text(getattr(f, k), k) for f in changed]
        for k in ("nodes", "edges", "meta", "access_control")
    }
    rows = pa.table(
        {
            "id": [f.id for f in changed],
            "user_id": [f.user_id for f in changed],
            "name": [f.name for f in changed],
            "description": pa.array([f.description for f in changed], pa.string()),
            **{k: pa.array(v, pa.string()) for k, v in texts.items()},
            "created_at": pa.array([f.created_at for f in changed], pa.timestamp("us")),
            "updated_at": pa.array([f.updated_at for f in changed], pa.timestamp("us")),
            "version": [f.version for f in changed],
        }
    )

    def write(c: Connection) -> None:
        c.register("mirrored_flows", rows)
        try:
            c.execute(
                "INSERT INTO flow_versions SELECT id, version, nodes, edges, updated_at FROM mirrored_flows"
                " ON CONFLICT DO NOTHING"
            )
            c.execute("DELETE FROM flows WHERE id IN (SELECT id FROM mirrored_flows)")
            c.execute(f"INSERT INTO flows ({_COLUMNS}) SELECT {_COLUMNS} FROM mirrored_flows")
        finally:
            c.unregister("mirrored_flows")

    ctx.store.write(write)


def copy_name(name: str) -> str:
    """ "<name> (copy)", within the name's limit: a longer one could not be saved back or imported."""
    return f"{name[: NAME_MAX - len(_COPY)]}{_COPY}"


def may_duplicate(ctx: Context, viewer: Viewer, flow_id: str) -> None:
    """Whether a copy may be asked at all, in the contract's order (409 in Open WebUI mode, 404,
    403), before the route reads the body: a name that does not fit is not answered first."""
    _ours(ctx)
    require_flow_access(ctx.directory, viewer, flow_id)


def duplicate_flow(ctx: Context, viewer: Viewer, flow_id: str, name: str | None = None) -> Flow:
    """A private copy owned by the caller (the peer ignored `name` and made the copy public)."""
    may_duplicate(ctx, viewer, flow_id)
    source = get_flow(ctx, viewer, flow_id)
    return create_flow(
        ctx,
        viewer,
        name=name or copy_name(source.name),
        description=source.description,
        nodes=source.nodes,
        edges=source.edges,
        meta=source.meta,
        access_control={},
    )


def export_flow(ctx: Context, viewer: Viewer, flow_id: str) -> FlowExport:
    """The definition in the peer's export wrapper, stamped with the flow's `updated_at`."""
    flow = get_flow(ctx, viewer, flow_id)
    return FlowExport(flow, flow.updated_at)


def execute_flow(ctx: Context, viewer: Viewer, flow_id: str) -> dict[str, str]:
    """The peer's answer: flows run in the browser; the server only checks read access."""
    require_flow_access(ctx.directory, viewer, flow_id)
    return {"message": EXECUTE_ANSWER, "flowId": flow_id, "status": "delegated_to_client"}
