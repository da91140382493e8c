"""Trends answered from the daily rollups stay exact after a retention pass and after a restore:
the days runs leave (or come back to) are marked dirty in the same transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.core.context import Context
from analytics.retention import apply, policies, restore
from analytics.retention.policies import Policy
from analytics.trends import metrics as trends
from analytics.trends import rollups
from tests.factories.retention import ADMIN, NOW, generate, make_flows


def _daily(ctx: Context) -> dict[str, int]:
    q = trends.MetricsQuery(
        measures=["runs"],
        start=(NOW - timedelta(days=60)).replace(hour=0, minute=0, second=0, microsecond=0),
        end=NOW.replace(hour=0, minute=0, second=0, microsecond=0),
        bucket="day",
        previous=False,
    )
    return {str(r["bucket"].date()): r["runs"] for r in trends.metrics(ctx, ADMIN, q).rows.to_pylist()}


def _table(ctx: Context) -> dict[str, int]:
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT CAST(created_at AS DATE)::VARCHAR, count(*) FROM executions"
            " WHERE created_at >= ? AND created_at < ? GROUP BY ALL",
            [
                (NOW - timedelta(days=60)).replace(hour=0, minute=0, second=0, microsecond=0),
                NOW.replace(hour=0, minute=0, second=0, microsecond=0),
            ],
        ).fetchall()
    )
    return dict(rows)


def test_rollup_trends_after_retention_and_restore(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 0)  # let rollups answer a small test store
    ids = make_flows(ctx, ["r"])
    generate(ctx, [ids["r"]], 800, days=60)
    rollups.refresh(ctx, today=NOW.date())
    before = _daily(ctx)
    assert {d: n for d, n in before.items() if n} == _table(ctx)

    policies.set_policy(ctx, ADMIN, Policy(keep_last=300))  # removes runs from every old day
    out = apply.run_retention(ctx, now=NOW, compact=False)
    assert out["deleted"] == 500
    after = _daily(ctx)
    assert {d: n for d, n in after.items() if n} == _table(ctx)
    assert after != before

    restore.restore(ctx, start=NOW - timedelta(days=61), end=NOW)
    assert _daily(ctx) == before
