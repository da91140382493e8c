"""Notebooks over an export folder: the same analytics functions give the store's answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, NotFound
from analytics.exports import run_export
from analytics.exports.open_folder import EXPORT_READER, open_export
from analytics.flows import registry as flows
from analytics.history import ingest, search
from analytics.history import runs as history
from analytics.history.filters import ExecutionFilter
from analytics.insights.breakdown import node_breakdown
from analytics.trends import metrics as trends
from tests.factories import ROOT as ADMIN
from tests.factories import make_execution

DAY0 = datetime(2026, 3, 1)


def close(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    """Equal, floats to 12 digits: sums of floats may add in another order over the files."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k, v in w.items():
            assert g[k] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v), k
    return True


def _seed(ctx: Context) -> tuple[str, str]:
    big = flows.create_flow(ctx, ADMIN, name="big", nodes=[], edges=[]).id
    small = flows.create_flow(ctx, ADMIN, name="small", nodes=[], edges=[]).id
    items = []
    for i in range(120):
        fid = big if i % 4 else small
        status = ("success", "success", "error", "aborted")[i % 7 % 4]
        run = make_execution(fid, status=status, execution_time=50 + 37 * i % 900, text=f"answer {i}")
        run["created_at"] = (DAY0 + timedelta(hours=9 * i)).isoformat()
        if status == "error":
            run["errors"] = {"model_1739905519876_k3j9x2abq": f"timeout after {i} s"}
        items.append(run)
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    return big, small


def test_trend_breakdown_search_and_stats_match_the_store(ctx: Context, tmp_path: Path) -> None:
    big, small = _seed(ctx)
    run_export(ctx)
    query = trends.MetricsQuery(
        start=DAY0,
        end=DAY0 + timedelta(days=46),
        bucket="day",
        measures=["runs", "failure_rate", "p50_duration", "p95_duration", "cost", "tokens_out"],
    )
    wanted = ExecutionFilter.model_validate(
        {"status": {"any_": ["error"]}, "error": {"contains_": "TIMEOUT"}, "execution_time": {"ge_": 100}}
    )
    folder = ctx.settings.data_dir / "exports"
    with open_export(folder) as exported:
        for fid in (big, small):
            mine = trends.flow_trend(ctx, ADMIN, fid, query)
            theirs = trends.flow_trend(exported, EXPORT_READER, fid, query)
            assert close(theirs.rows.to_pylist(), mine.rows.to_pylist())
            assert sum(r["runs"] for r in theirs.rows.to_pylist()) == (90 if fid == big else 30)
            # sums of floats may add in another order over the files: equal to the last digits
            theirs_nodes = node_breakdown(exported, EXPORT_READER, fid).to_pylist()
            mine_nodes = node_breakdown(ctx, ADMIN, fid).to_pylist()
            assert len(theirs_nodes) == len(mine_nodes) == 2
            assert close(theirs_nodes, mine_nodes)
            assert history.get_stats(exported, EXPORT_READER, fid) == history.get_stats(ctx, ADMIN, fid)
        found = search.search_executions(exported, EXPORT_READER, filter=wanted, limit=500)
        expected = search.search_executions(ctx, ADMIN, filter=wanted, limit=500)
        assert found.total == expected.total > 0
        assert [h.row.id for h in found.items] == [h.row.id for h in expected.items]
        # a run's whole payload comes back as stored (outputs restored from node_results)
        one = expected.items[0].row
        assert history.get_execution(exported, EXPORT_READER, one.flow_id, one.id) == history.get_execution(
            ctx, ADMIN, one.flow_id, one.id
        )
        # Arrow out, for pandas or polars
        assert trends.flow_trend(exported, EXPORT_READER, big, query).rows.num_rows == 46


def test_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a flowhistory export"):
        open_export(tmp_path)


def test_an_export_is_read_as_an_admin_only(ctx: Context) -> None:
    """Access control is not exported: a user's viewer got answers by other rules than the
    server's (a flow made private still read, a write grant lost). It is refused in words."""
    big, _ = _seed(ctx)
    run_export(ctx)
    with open_export(ctx.settings.data_dir / "exports") as exported:
        assert history.get_stats(exported, EXPORT_READER, big).total_executions == 90
        reader = Viewer("someone", "user")
        for read in (
            lambda: history.get_stats(exported, reader, big),
            lambda: search.search_executions(exported, reader, limit=5),
            lambda: node_breakdown(exported, reader, big),
        ):
            with pytest.raises(AccessDenied, match="EXPORT_READER"):
                read()
