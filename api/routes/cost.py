"""The price table (admins edit it) and the cost report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from analytics.core.clock import QueryTime
from analytics.cost import report as cost_report
from analytics.cost.report import CostGroup
from api.dependencies import AdminUser, Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.cost import CostRowOut, PriceOut, PricesIn, RecomputeOut

router = APIRouter(prefix="/api/v1", tags=["cost"], route_class=JsonRoute)


@router.get("/prices", response_model=list[PriceOut])
def list_prices(_: CurrentUser, ctx: Ctx) -> list[PriceOut]:
    """The price table in force (USD per million tokens, by model glob and valid-from date)."""
    return [PriceOut.model_validate(p) for p in ctx.prices.all()]


@router.put("/prices", response_model=list[PriceOut])
def replace_prices(body: PricesIn, _: AdminUser, ctx: Ctx) -> list[PriceOut]:
    """Replace the price table; new runs are priced with it, stored ones after a recompute."""
    prices = cost_report.set_prices(ctx, [p.to_price() for p in body.prices])
    return [PriceOut.model_validate(p) for p in prices]


@router.post("/prices/recompute", response_model=RecomputeOut)
def recompute_costs(start: QueryTime, end: QueryTime, _: AdminUser, ctx: Ctx) -> RecomputeOut:
    """Re-price the runs created in [start, end) with the current table."""
    return RecomputeOut(repriced_runs=cost_report.recompute_costs(ctx, start=start, end=end))


@router.get("/cost", response_model=list[CostRowOut])
def cost(
    viewer: CurrentUser,
    ctx: Ctx,
    start: QueryTime,
    end: QueryTime,
    group_by: CostGroup = CostGroup.FLOW,
    flow_id: Annotated[str | None, Query(max_length=255)] = None,
) -> list[CostRowOut]:
    """Cost per flow, model or node over [start, end): per run, per success, burned by error runs
    (failed) and by aborted runs, each apart."""
    table = cost_report.cost_report(ctx, viewer, start=start, end=end, group_by=group_by, flow_id=flow_id)
    return [CostRowOut.model_validate(r) for r in table.to_pylist()]
