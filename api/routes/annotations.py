"""Compare executions, replay one, and annotate one (notes, tags, rating).

Every path under `/flows/{flow_id}/executions/{execution_id}/` here has a third segment, so none
collides with the contract's routes in executions.py, which is mounted first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from analytics.core.errors import NotFound
from analytics.history import annotations, compare, replay
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, json_response
from api.schemas.annotations import (
    AnnotationOut,
    AnnotationUpdate,
    CompareRequest,
    ComparisonOut,
    ReplayOut,
    annotation_dict,
    comparison_dict,
    replay_dict,
)
from api.schemas.executions import ExecutionSummaryOut, summary_dict

router = APIRouter(prefix="/api/v1", tags=["annotations"], route_class=JsonRoute)
_RUN = "/flows/{flow_id}/executions/{execution_id}"


@router.post("/executions/compare", response_model=ComparisonOut)
def compare_executions(body: CompareRequest, viewer: CurrentUser, ctx: Ctx) -> Response:
    """Compare 2-10 executions node by node against the first; differing nodes first."""
    result = compare.compare_executions(ctx, viewer, [str(i) for i in body.ids])
    return json_response(comparison_dict(result))


@router.get(_RUN + "/replay", response_model=ReplayOut)
def get_replay(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Response:
    """What it takes to run this execution again: inputs, the definition that ran, the body to save."""
    return json_response(replay_dict(replay.replay_payload(ctx, viewer, flow_id, execution_id)))


@router.get(_RUN + "/replays", response_model=list[ExecutionSummaryOut])
def list_replays(
    flow_id: str,
    execution_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Executions saved as replays of this one, newest first."""
    rows = replay.list_replays(ctx, viewer, flow_id, execution_id, limit=limit)
    return json_response([summary_dict(s) for s in rows])


@router.get(_RUN + "/compare-replay", response_model=ComparisonOut)
def compare_replay(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Response:
    """Compare an execution with its latest replay (or a replay with its original)."""
    return json_response(comparison_dict(replay.compare_with_replays(ctx, viewer, flow_id, execution_id)))


@router.get(_RUN + "/annotation", response_model=AnnotationOut)
def get_annotation(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> Response:
    """The execution's note, tags and rating (404 when it has none)."""
    found = annotations.get_annotation(ctx, viewer, flow_id, execution_id)
    if found is None:
        raise NotFound("This execution has no annotation")
    return json_response(annotation_dict(found))


@router.put(_RUN + "/annotation", response_model=AnnotationOut)
def put_annotation(
    flow_id: str, execution_id: str, body: AnnotationUpdate, viewer: CurrentUser, ctx: Ctx
) -> Response:
    """Replace the execution's note, tags and rating (write access to the flow)."""
    return json_response(
        annotation_dict(annotations.set_annotation(ctx, viewer, flow_id, execution_id, body))
    )


@router.delete(_RUN + "/annotation", response_model=bool)
def delete_annotation(flow_id: str, execution_id: str, viewer: CurrentUser, ctx: Ctx) -> bool:
    """Clear the execution's note, tags and rating (write access to the flow)."""
    annotations.delete_annotation(ctx, viewer, flow_id, execution_id)
    return True
