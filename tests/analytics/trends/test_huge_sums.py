"""Totals of absurd token counts and durations stop at 2**62 on every path instead of failing.

Three runs each report 512 nodes of 2**53 tokens (a run's own total is capped at 2**62 when it
is stored), so their sum passes BIGINT; 1,100 runs of 2**53 ms do the same for durations. Each
total that adds them up (cost report, node breakdown, trends by their three paths: Python over
a small flow, the DuckDB scan, the daily rollups) must answer the cap, not a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from analytics.core.context import Context
from analytics.core.saturating import CAP
from analytics.cost.report import CostGroup, cost_report
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.insights.breakdown import node_breakdown
from analytics.trends import metrics as trends
from analytics.trends import rollups
from analytics.trends.metrics import MetricsQuery
from tests.factories import ROOT as ADMIN

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
TODAY = date(2026, 3, 5)  # both days rolled up
HUGE = 2**53  # the largest count or duration a node or run may report


@pytest.fixture
def flow(ctx: Context) -> str:
    fid = flows.create_flow(ctx, ADMIN, name="absurd", nodes=[], edges=[]).id
    usage = {"prompt_tokens": HUGE, "completion_tokens": HUGE}
    greedy = {
        f"model_{i}": {"modelId": "m-unpriced", "usage": usage, "duration_ms": HUGE} for i in range(512)
    }
    items: list[dict[str, Any]] = [
        {
            "flow_id": fid,
            "status": "success",
            "execution_time": HUGE,
            "created_at": (DAY0 + timedelta(days=i % 2, seconds=i)).isoformat(),
            "node_results": greedy if i < 3 else {"model_x": {"modelId": "m", "duration_ms": HUGE}},
        }
        for i in range(1100)
    ]
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    return fid


def test_cost_report_totals_stop_at_the_cap(ctx: Context, flow: str) -> None:
    for group in CostGroup:
        rows = cost_report(ctx, ADMIN, start=DAY0, end=DAY0 + timedelta(days=2), group_by=group).to_pylist()
        assert rows, group
        most = max(r["tokens_in"] or 0 for r in rows)
        # per flow and per model (all 1,536 greedy nodes use one) past the cap; per node (one flow) 3 x 2**53
        assert most == (3 * HUGE if group in (CostGroup.NODE, CostGroup.FLOW_NODE) else CAP), group


def test_node_breakdown_totals_stop_at_the_cap(ctx: Context, flow: str) -> None:
    rows = {r["node_id"]: r for r in node_breakdown(ctx, ADMIN, flow).to_pylist()}
    assert rows["model_x"]["total_ms"] == CAP  # 1,097 x 2**53 ms
    assert rows["model_0"]["tokens_in"] == 3 * HUGE  # under the cap: exact


def _query() -> MetricsQuery:
    return MetricsQuery.model_validate(
        {
            "measures": ["runs", "tokens_in", "tokens_out", "avg_duration"],
            "start": DAY0,
            "end": DAY0 + timedelta(days=2),
            "bucket": "day",
        }
    )


@pytest.mark.parametrize("path", ["small flow, in Python", "scan", "rollups"])
def test_trend_totals_stop_at_the_cap(
    ctx: Context, flow: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path != "small flow, in Python":
        monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", -1)
    if path == "rollups":
        assert rollups.refresh(ctx, today=TODAY)["days_rolled"] == 3
        monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    else:
        monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 10**12)
    result = trends.flow_trend(ctx, ADMIN, flow, _query())
    totals = result.totals.to_pylist()[0]
    assert totals["runs"] == 1100
    assert totals["tokens_in"] == CAP and totals["tokens_out"] == CAP
    days = result.rows.to_pylist()
    assert [d["runs"] for d in days] == [550, 550]
    assert all(d["tokens_in"] == CAP for d in days)  # each day holds runs of 2**62 tokens
    if path == "rollups":  # a day's duration sum was capped: its average reads low, never fails
        assert 0 < totals["avg_duration"] <= HUGE
    else:
        assert totals["avg_duration"] == pytest.approx(HUGE, rel=1e-9)


def test_a_day_whose_durations_pass_the_cap_agrees_once_rebuilt(ctx: Context, flow: str) -> None:
    """Each day holds 550 runs of 2**53 ms, past the cap: the check against `executions`
    compared the exact sum with the capped one, found the day disagreeing on every pass and
    rebuilt it, still capped, for ever (an operator reads a write path that forgot)."""
    first = rollups.refresh(ctx, today=TODAY)
    assert first["days_rolled"] == 3 and first["disagreeing_rebuilt"] == 0
    assert rollups.refresh(ctx, today=TODAY)["disagreeing_rebuilt"] == 0
