"""Metrics over time: the general query (a JSON body) and a per-flow trend (query parameters).

Both answer `MetricsOut`: times are epoch seconds (UTC), each row's `bucket` being its bucket's
start. Bad input is a 422 naming the field; the per-flow route checks the flow first (404, 403).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from analytics.access.permissions import require_flow_access
from analytics.trends import metrics as trends
from analytics.trends.metrics import MetricsQuery
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, json_response, validation_error
from api.schemas.trends import MetricsOut, metrics_dict

router = APIRouter(prefix="/api/v1", tags=["trends"], route_class=JsonRoute)


@router.post("/metrics", response_model=MetricsOut)
def query_metrics(query: MetricsQuery, viewer: CurrentUser, ctx: Ctx) -> Response:
    """Measures per time bucket (and group) over the runs you may see, with the previous period."""
    return json_response(metrics_dict(trends.metrics(ctx, viewer, query)))


def _from_params(params: dict[str, Any]) -> MetricsQuery:
    try:
        return MetricsQuery.model_validate(params)
    except ValidationError as exc:
        raise validation_error(exc, prefix=("query",)) from exc


@router.get("/flows/{flow_id}/trend", response_model=MetricsOut)
def get_flow_trend(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    start: Annotated[str, Query(max_length=64, description="ISO 8601 or epoch seconds")],
    end: Annotated[str, Query(max_length=64, description="ISO 8601 or epoch seconds")],
    bucket: Annotated[str, Query(max_length=16)] = "auto",
    measures: Annotated[list[str], Query(max_length=64, description="repeat or comma-separate")] = [  # noqa: B006
        "runs"
    ],
    group_by: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """One flow's trend: measures per time bucket, with the previous period."""
    require_flow_access(ctx.directory, viewer, flow_id)
    names = [name.strip() for value in measures for name in value.split(",") if name.strip()]
    params = {"start": start, "end": end, "bucket": bucket, "measures": names, "group_by": group_by}
    query = _from_params({k: v for k, v in params.items() if v is not None})
    return json_response(metrics_dict(trends.flow_trend(ctx, viewer, flow_id, query)))
