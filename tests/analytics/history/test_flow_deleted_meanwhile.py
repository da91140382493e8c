"""A flow deleted between a run's checks and its commit: the run is refused, never outlives it.

Every write path checks the flow when it stages a run, and the writer commits later; a delete of
the flow could commit in between, and the run then went in after it: acknowledged, in counts,
cost and exports, yet in a flow no route could reach to delete it. The writer now looks the
flows up right before the insert (nothing else writes meanwhile), and such runs are refused:
a 404 for the single POST, "Flow not found" for a batch's items of that flow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.access import users
from analytics.access.permissions import FLOW_NOT_FOUND, Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import NotFound
from analytics.flows import registry as flows
from analytics.history import batch_bulk, ingest

ADMIN = Viewer("admin", "admin")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = open_context(Settings(db_path=tmp_path / "store.duckdb"))
    users.create_user(context, "admin", role="admin")
    for fid in ("doomed", "kept"):
        flows.create_flow(context, ADMIN, name=fid, nodes=[], edges=[], flow_id=fid)
    try:
        yield context
    finally:
        context.close()


def _run(flow_id: str, i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=i + 1)),
        "flow_id": flow_id,
        "status": "success",
        "execution_time": i,
        "created_at": 1_760_000_000 + i,
        "node_results": {f"model_{i}": {"modelId": "gpt-4o", "usage": {"prompt_tokens": i}}},
    }


def _stored(ctx: Context) -> dict[str, int]:
    rows = ctx.store.read(
        lambda c: c.execute("SELECT flow_id, count(*) FROM executions GROUP BY ALL").fetchall()
    )
    return dict(rows)


def _delete_doomed_before_the_commit(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both batch paths remember the runs' flow definitions right before they queue the rows:
    the flow is deleted there, after every check passed."""
    remember = ingest.remember_definitions

    def then_delete(c: Context, staged: list[ingest.Staged]) -> None:
        remember(c, staged)
        if c.directory.flow("doomed") is not None:
            flows.delete_flow(c, ADMIN, "doomed")

    monkeypatch.setattr(ingest, "remember_definitions", then_delete)


def test_the_single_post_is_a_404_and_nothing_is_stored(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = ingest.stage(ctx, ADMIN, ingest.parse_form(_run("doomed", 0)), flow_id="doomed")
    flows.delete_flow(ctx, ADMIN, "doomed")
    error = ingest.submit(ctx, [staged]).exception()
    assert error is not None and ingest.flow_gone(error).detail == FLOW_NOT_FOUND  # type: ignore[attr-defined]

    stage = ingest.stage

    def then_delete(c: Context, viewer: Viewer, form: Any, **kw: Any) -> ingest.Staged:
        checked = stage(c, viewer, form, **kw)  # every check passed: the flow was there
        flows.delete_flow(c, ADMIN, form.flow_id)
        return checked

    monkeypatch.setattr(ingest, "stage", then_delete)
    with pytest.raises(NotFound) as refused:  # the route's path (E1)
        ingest.save(ctx, ADMIN, ingest.parse_form(_run("kept", 1)), flow_id="kept").result()
    assert refused.value.detail == FLOW_NOT_FOUND
    flows.create_flow(ctx, ADMIN, name="again", nodes=[], edges=[], flow_id="again")
    with pytest.raises(NotFound):  # the library's
        ingest.save_execution(ctx, ADMIN, _run("again", 2), flow_id="again")
    assert _stored(ctx) == {}


@pytest.mark.parametrize("path", ["per item (JSON array)", "bulk (NDJSON)"])
def test_a_batch_refuses_the_deleted_flows_items_and_stores_the_others(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    items = [_run("doomed" if i % 3 == 0 else "kept", i) for i in range(30)]
    _delete_doomed_before_the_commit(ctx, monkeypatch)
    if path.startswith("bulk"):
        results = batch_bulk.ingest_ndjson(ctx, ADMIN, b"\n".join(orjson.dumps(r) for r in items)).items
    else:
        results = ingest.save_executions(ctx, ADMIN, items)
    for item, result in zip(items, results, strict=True):
        if item["flow_id"] == "doomed":
            assert (result.status, result.detail) == ("refused", FLOW_NOT_FOUND), result
        else:
            assert result.status == "stored", result
    assert _stored(ctx) == {"kept": 20}
    assert ctx.directory.flow("doomed") is None
    assert ctx.counters.stats("kept").total_executions == 20
