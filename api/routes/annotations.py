"""Compare executions, replay one, and annotate one (notes, tags, rating).

Every path under `/flows/{flow_id}/executions/{execution_id}/` here has a third segment, so none
collides with the contract's routes in executions.py, which is mounted first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from analytics.history import annotations as annotations_lib
from analytics.history import compare, replay
from api.dependencies import FLOW_FIRST, Ctx, CurrentUser
from api.json_body import JsonRoute
from api.openapi import maximum_from
from api.schemas.annotations import (
    AnnotationOut,
    AnnotationUpdate,
    CompareRequest,
    ComparisonOut,
    ReplayOut,
)
from api.schemas.executions import ExecutionSummaryOut

router = APIRouter(prefix="/api/v1", tags=["annotations"], route_class=JsonRoute)
_RUN = "/flows/{flow_id}/executions/{execution_id}"


@router.post("/executions/compare", response_model=ComparisonOut)
def compare_executions(body: CompareRequest, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Compare 2-10 executions node by node against the first; differing nodes first."""
    return compare.compare_executions(ctx, viewer, [str(i) for i in body.ids])


@router.get(_RUN + "/replay", response_model=ReplayOut)
def get_replay(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """What it takes to run this execution again: inputs, the definition that ran, the body to save."""
    return replay.replay_payload(ctx, viewer, flow_id, execution_id)


@router.get(_RUN + "/replays", response_model=list[ExecutionSummaryOut], dependencies=FLOW_FIRST)
def list_replays(
    flow_id: str,
    execution_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int | None, Query(ge=1, json_schema_extra=maximum_from("list_limit_max"))] = None,
) -> Any:
    """Executions saved as replays of this one, newest first."""
    return replay.list_replays(ctx, viewer, flow_id, execution_id, limit=limit)


@router.get(_RUN + "/compare-replay", response_model=ComparisonOut)
def compare_replay(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Compare an execution with its latest replay (or a replay with its original)."""
    return replay.compare_with_replays(ctx, viewer, flow_id, execution_id)


@router.get(_RUN + "/annotation", response_model=AnnotationOut)
def get_annotation(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Any:
    """The execution's note, tags and rating (404 when it has none)."""
    return annotations_lib.get_annotation(ctx, viewer, flow_id, execution_id, missing_ok=False)


async def _annotatable(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> None:
    """Before the body is validated (see annotations.may_annotate)."""
    annotations_lib.may_annotate(ctx, viewer, flow_id)


@router.put(_RUN + "/annotation", response_model=AnnotationOut, dependencies=[Depends(_annotatable)])
def put_annotation(
    flow_id: str, execution_id: str, body: AnnotationUpdate, viewer: CurrentUser, ctx: Ctx
) -> Any:
    """Replace the execution's note, tags and rating (write access to the flow)."""
    return annotations_lib.set_annotation(ctx, viewer, flow_id, execution_id, body)


@router.delete(_RUN + "/annotation", response_model=bool)
def delete_annotation(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Clear the execution's note, tags and rating (write access to the flow)."""
    annotations_lib.delete_annotation(ctx, viewer, flow_id, execution_id)
    return True
