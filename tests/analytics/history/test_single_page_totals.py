"""A list or search answered in one page counts its own items as the total.

The total is read beside the page (search: a count on another cursor; the cursor list: the
in-memory counters, a moment after), so under writes one answer said `total` 0 with 300 items,
or 300 with none. Here the other reading is made stale on purpose.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Any

import pytest

from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest, search
from analytics.history import runs as history
from analytics.history.filters import ExecutionFilter
from tests.factories import ROOT, make_execution


@pytest.fixture
def flow_id(ctx: Context) -> str:
    fid = flows.create_flow(ctx, ROOT, name="f", nodes=[], edges=[]).id
    results = ingest.save_executions(ctx, ROOT, [make_execution(fid) for _ in range(5)])
    assert all(r.status == "stored" for r in results)
    return fid


def _stale_count(monkeypatch: pytest.MonkeyPatch, value: int) -> None:
    def submit(fn: Any, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result([(value,)])
        return done

    monkeypatch.setattr(search._COUNTS, "submit", submit)


def test_search_in_one_page_counts_its_items(
    ctx: Context, flow_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stale_count(monkeypatch, 0)
    f = ExecutionFilter.model_validate({"flow_id": {"any_": [flow_id]}})
    page = search.search_executions(ctx, ROOT, filter=f, limit=10)
    assert len(page.items) == 5 and page.total == 5 and page.next_cursor is None
    paged = search.search_executions(ctx, ROOT, filter=f, limit=2)  # more pages: the count stands
    assert len(paged.items) == 2 and paged.total == 0 and paged.next_cursor is not None


def test_the_cursor_list_in_one_page_counts_its_items(
    ctx: Context, flow_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ctx.counters.stats
    monkeypatch.setattr(
        ctx.counters,
        "stats",
        lambda fid, only_user=None: dataclasses.replace(real(fid), total_executions=300),
    )
    page = history.list_executions(ctx, ROOT, flow_id, limit=10)
    assert len(page.items) == 5 and page.total == 5
    paged = history.list_executions(ctx, ROOT, flow_id, limit=2)
    assert len(paged.items) == 2 and paged.total == 300
