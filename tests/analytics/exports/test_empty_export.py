"""Notebooks (`open_export`) over an export holding no runs yet: the analytics functions answer
nothing rather than failing, and the views have the types the populated ones have."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from analytics.core.context import Context
from analytics.core.errors import NotFound
from analytics.exports import run_export
from analytics.exports.open_folder import EXPORT_READER, open_export
from analytics.history import runs as history
from analytics.history import search
from analytics.trends import metrics as trends
from tests.factories.exports import add_runs, seed_flow

QUERY = trends.MetricsQuery(
    start=datetime(2026, 11, 1), end=datetime(2026, 11, 3), bucket="day", measures=["runs", "p50_duration"]
)


def describe(root: Path) -> dict[str, list[tuple[str, str]]]:
    with open_export(root) as ctx:
        return {
            t: ctx.store.read(lambda c, t=t: [(r[0], r[1]) for r in c.execute(f"DESCRIBE {t}").fetchall()])
            for t in ("executions", "execution_nodes", "execution_annotations")
        }


def nothing_found(root: Path, flow: str | None) -> None:
    with open_export(root) as ctx:
        assert search.search_executions(ctx, EXPORT_READER, limit=10).total == 0
        if flow is None:
            return
        assert (
            sum(r["runs"] for r in trends.flow_trend(ctx, EXPORT_READER, flow, QUERY).rows.to_pylist()) == 0
        )
        assert history.get_stats(ctx, EXPORT_READER, flow).total_executions == 0


def test_an_export_of_an_empty_store(ctx: Context) -> None:
    root = ctx.settings.data_dir / "exports"
    flow = seed_flow(ctx)
    run_export(ctx)  # a flow, no runs: no partition at all
    nothing_found(root, flow)
    empty = describe(root)
    add_runs(ctx, flow, ["2026-11-01"], 3)
    run_export(ctx)
    assert describe(root) == empty  # the same columns and types once there are files


def test_a_not_yet_written_export(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    (root / "_staging").mkdir(parents=True)  # the first cycle has started, nothing is published
    nothing_found(root, None)


def test_a_folder_that_is_no_export_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a flowhistory export"):
        open_export(tmp_path / "missing")
