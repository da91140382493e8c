"""The flow registry endpoints the client uses (list, create, import, get, update, delete, duplicate,
export, execute). `/create` and `/import` are declared before `/{flow_id}` so they are reachable
(the peer declared import after it and never reached it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from analytics.flows import registry as flows
from api.dependencies import Ctx, CurrentUser
from api.json_body import PayloadRoute
from api.schemas.flows import (
    DuplicateForm,
    ExecuteOut,
    FlowExportOut,
    FlowForm,
    FlowImport,
    FlowListItem,
    FlowOut,
    FlowUpdate,
)

router = APIRouter(prefix="/api/v1/flows", tags=["flows"], route_class=PayloadRoute)


@router.get("/", response_model=list[FlowListItem])
def list_flows(viewer: CurrentUser, ctx: Ctx) -> Any:
    """Flows the caller owns or may write."""
    return flows.list_flows(ctx, viewer)


@router.get("/accessible", response_model=list[FlowListItem])
def list_accessible_flows(viewer: CurrentUser, ctx: Ctx) -> Any:
    """Flows the caller owns or may read."""
    return flows.list_accessible_flows(ctx, viewer)


@router.post("/create", response_model=FlowOut)
def create_flow(form: FlowForm, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Create a flow owned by the caller."""
    return flows.create_flow(ctx, viewer, **form.model_dump())


@router.post("/import", response_model=FlowOut)
def import_flow(form: FlowImport, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Create a flow owned by the caller from what export produced (or a bare flow)."""
    return flows.create_flow(ctx, viewer, **form.model_dump())


@router.get("/{flow_id}", response_model=FlowOut)
def get_flow(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """One flow."""
    return flows.get_flow(ctx, viewer, flow_id)


async def _updatable(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> None:
    """Before the body is validated (see flows.may_update)."""
    flows.may_update(ctx, viewer, flow_id)


@router.post("/{flow_id}", response_model=FlowOut, dependencies=[Depends(_updatable)])
def update_flow(flow_id: str, form: FlowUpdate, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Update a flow; omitted fields stay as they are."""
    return flows.update_flow(ctx, viewer, flow_id, form.changes())


@router.delete("/{flow_id}", response_model=bool)
def delete_flow(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Delete a flow and its executions (owner or admin)."""
    flows.delete_flow(ctx, viewer, flow_id)
    return True


async def _duplicable(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> None:
    """Before the body is validated (see flows.may_duplicate)."""
    flows.may_duplicate(ctx, viewer, flow_id)


@router.post("/{flow_id}/duplicate", response_model=FlowOut, dependencies=[Depends(_duplicable)])
def duplicate_flow(flow_id: str, viewer: CurrentUser, ctx: Ctx, form: DuplicateForm | None = None) -> Any:
    """Copy a flow the caller may read; the copy is theirs and private, named `name` if given."""
    return flows.duplicate_flow(ctx, viewer, flow_id, form.name if form else None)


@router.get("/{flow_id}/export", response_model=FlowExportOut)
def export_flow(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """The flow's definition in the export wrapper, for download and `POST /import`."""
    return flows.export_flow(ctx, viewer, flow_id)


@router.post("/{flow_id}/execute", response_model=ExecuteOut)
def execute_flow(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Execution happens in the browser; answered as the peer does (read access)."""
    return flows.execute_flow(ctx, viewer, flow_id)
