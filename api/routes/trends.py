"""Metrics over time: the general query (a JSON body) and a per-flow trend (query parameters).

Both answer `MetricsOut`: times are epoch seconds (UTC), each row's `bucket` being its bucket's
start. Bad input is a 422 naming the field; then the per-flow trend checks the flow (404, 403).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analytics.core.clock import query_time_value
from analytics.trends import metrics as trends
from analytics.trends.metrics import MetricsQuery
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute, validate_query
from api.schemas.trends import MetricsOut

router = APIRouter(prefix="/api/v1", tags=["trends"], route_class=JsonRoute)


@router.post("/metrics", response_model=MetricsOut)
def query_metrics(query: MetricsQuery, viewer: CurrentUser, ctx: Ctx) -> Any:
    """Measures per time bucket (and group) over the runs you may see, with the previous period."""
    return trends.metrics(ctx, viewer, query)


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
    tz: Annotated[str, Query(max_length=64, description="IANA zone for day, week and month buckets")] = "UTC",
) -> Any:
    """One flow's trend: measures per time bucket, with the previous period."""
    names = [name.strip() for value in measures for name in value.split(",") if name.strip()]
    # digits in a query are epoch seconds: the number JSON would carry (a string of them is not)
    start_at, end_at = query_time_value(start), query_time_value(end)
    params = {
        "start": start_at,
        "end": end_at,
        "bucket": bucket,
        "measures": names,
        "group_by": group_by,
        "tz": tz,
    }
    query = validate_query(MetricsQuery, {k: v for k, v in params.items() if v is not None})
    return trends.flow_trend(ctx, viewer, flow_id, query)
