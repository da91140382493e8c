"""Per-flow insights (issue 3): node breakdown, failure signatures, reliability, versions, anomalies.

Every route takes an optional `[start, end)` range (ISO 8601 or epoch seconds; UTC when no
offset). Shape limits are Query constraints (422 in FastAPI's list form); meaning (start before
end) is checked in analytics (422 with a `detail` naming the field).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analytics.core.clock import QueryTime
from analytics.insights import anomalies, breakdown, regressions, reliability, signatures
from api.dependencies import Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.insights import (
    AnomalyOut,
    FailureSignatureOut,
    NodeBreakdownOut,
    ReliabilityOut,
    TableOf,
    VersionOut,
)

router = APIRouter(prefix="/api/v1", tags=["insights"], route_class=JsonRoute)

_FLOW = "/flows/{flow_id}"
Start = Annotated[QueryTime | None, Query(description="runs created at or after (inclusive)")]
End = Annotated[
    QueryTime | None,
    Query(
        description="runs created before (exclusive); unset: now, which the failures' trend windows count back from"
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get(_FLOW + "/nodes", response_model=TableOf(NodeBreakdownOut))
def get_node_breakdown(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, start: Start = None, end: End = None
) -> Any:
    """Per node: runs, failure rate, p50/p95 duration, share of the run's time, tokens and cost."""
    return breakdown.node_breakdown(ctx, viewer, flow_id, start=start, end=end)


@router.get(_FLOW + "/failures", response_model=TableOf(FailureSignatureOut))
def get_failure_signatures(
    flow_id: str, viewer: CurrentUser, ctx: Ctx, start: Start = None, end: End = None, limit: Limit = 100
) -> Any:
    """Error messages with ids, numbers, timestamps and quoted values stripped, by node, with a trend."""
    return signatures.failure_signatures(ctx, viewer, flow_id, start=start, end=end, limit=limit)


@router.get(_FLOW + "/reliability", response_model=ReliabilityOut)
def get_reliability(flow_id: str, viewer: CurrentUser, ctx: Ctx, start: Start = None, end: End = None) -> Any:
    """Time since last success, failure streaks (aborted runs skipped) and mean time to recovery."""
    return reliability.reliability(ctx, viewer, flow_id, start=start, end=end)


@router.get(_FLOW + "/versions", response_model=TableOf(VersionOut))
def get_version_regressions(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    start: Start = None,
    end: End = None,
    min_runs: Annotated[int, Query(ge=2, le=1_000_000)] = regressions.DEFAULT_MIN_RUNS,
    alpha: Annotated[float, Query(gt=0, lt=1)] = regressions.DEFAULT_ALPHA,
) -> Any:
    """Each version vs the previous: failure rate by two-proportion z-test, duration by Mann-Whitney U."""
    return regressions.version_regressions(
        ctx, viewer, flow_id, start=start, end=end, min_runs=min_runs, alpha=alpha
    )


@router.get(_FLOW + "/anomalies", response_model=TableOf(AnomalyOut))
def get_anomalies(
    flow_id: str,
    viewer: CurrentUser,
    ctx: Ctx,
    metric: anomalies.Metric = anomalies.Metric.duration,
    window: Annotated[int, Query(ge=anomalies.MIN_BASELINE, le=anomalies.MAX_WINDOW)] = 100,
    threshold: Annotated[float, Query(gt=0, le=1000)] = 3.5,
    start: Start = None,
    end: End = None,
    limit: Limit = 100,
) -> Any:
    """Runs whose robust z-score (median and MAD of the previous `window` runs) reaches `threshold`."""
    return anomalies.find_anomalies(
        ctx,
        viewer,
        flow_id,
        metric=metric,
        window=window,
        threshold=threshold,
        start=start,
        end=end,
        limit=limit,
    )
