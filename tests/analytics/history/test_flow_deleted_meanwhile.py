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
from analytics.history import runs as history
from tests.factories.writer import in_one_commit

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


# -- in one group commit ------------------------------------------------------------------
# The writer commits the writes queued while it was busy together and runs their after-commit
# hooks after the commit. A delete queued just before a run of the same flow lands in the same
# group: the flow check must see the delete, and the counters behind /stats must count the run
# once (a recount read after the commit already held it, and its own hook added it again).


def test_a_run_queued_after_its_flows_delete_in_one_commit_is_refused(ctx: Context) -> None:
    delete, post = in_one_commit(
        ctx,
        lambda: flows.delete_flow(ctx, ADMIN, "doomed"),
        lambda: ingest.save_execution(ctx, ADMIN, _run("doomed", 1), flow_id="doomed"),
    )
    assert delete is None
    assert isinstance(post, NotFound) and post.detail == FLOW_NOT_FOUND
    assert _stored(ctx) == {}


@pytest.mark.parametrize("delete", ["one run", "every run of the flow", "keep the newest"])
def test_stats_count_a_run_queued_after_a_delete_in_one_commit_once(ctx: Context, delete: str) -> None:
    first, second = (ingest.save_execution(ctx, ADMIN, _run("kept", i), flow_id="kept").id for i in (0, 1))
    deleting = {
        "one run": lambda: history.delete_execution(ctx, ADMIN, "kept", first),
        "every run of the flow": lambda: history.delete_executions(ctx, ADMIN, "kept"),
        "keep the newest": lambda: history.keep_last_executions(ctx, ADMIN, "kept", keep=1),
    }[delete]
    outcomes = in_one_commit(
        ctx, deleting, lambda: ingest.save_execution(ctx, ADMIN, _run("kept", 2), flow_id="kept")
    )
    assert outcomes == [None, None]
    stored = _stored(ctx)["kept"]
    assert stored == {"one run": 2, "every run of the flow": 1, "keep the newest": 2}[delete]
    assert history.get_stats(ctx, ADMIN, "kept").total_executions == stored
    assert second  # the newest before the delete


def test_an_update_queued_after_the_flows_delete_is_a_404_and_brings_nothing_back(ctx: Context) -> None:
    """The update read the flow before the delete committed: its write finds no row, writes no
    version, and the flow stays gone (it came back in the directory, and every route of it
    answered 500 until a restart)."""
    delete, update = in_one_commit(
        ctx,
        lambda: flows.delete_flow(ctx, ADMIN, "doomed"),
        lambda: flows.update_flow(ctx, ADMIN, "doomed", {"name": "renamed", "nodes": [{"id": "n"}]}),
    )
    assert delete is None
    assert isinstance(update, NotFound) and update.detail == FLOW_NOT_FOUND
    assert ctx.directory.flow("doomed") is None
    left = ctx.store.read(
        lambda c: c.execute(
            "SELECT (SELECT count(*) FROM flows WHERE id = 'doomed'),"
            " (SELECT count(*) FROM flow_versions WHERE flow_id = 'doomed')"
        ).fetchall()
    )
    assert left == [(0, 0)]
    with pytest.raises(NotFound):
        flows.get_flow(ctx, ADMIN, "doomed")


def test_reading_a_flow_whose_delete_committed_but_is_not_yet_published_is_a_404(ctx: Context) -> None:
    """Between a delete's commit and its after-commit hook the directory still holds the flow:
    the row is gone there, and the read answers 404 (it was an IndexError, a 500)."""
    ctx.store.write(lambda c: c.execute("DELETE FROM flows WHERE id = 'doomed'"))
    assert ctx.directory.flow("doomed") is not None  # the hook has not run: the window
    for read in (flows.get_flow, flows.export_flow):
        with pytest.raises(NotFound) as refused:
            read(ctx, ADMIN, "doomed")
        assert refused.value.detail == FLOW_NOT_FOUND
    with pytest.raises(NotFound):
        flows.update_flow(ctx, ADMIN, "doomed", {"name": "x"})


def test_two_updates_of_other_fields_in_one_commit_both_hold(ctx: Context) -> None:
    """Each update read the flow before the queue and wrote every field back: the second put
    the first's field back as it was."""
    outcomes = in_one_commit(
        ctx,
        lambda: flows.update_flow(ctx, ADMIN, "kept", {"name": "renamed"}),
        lambda: flows.update_flow(ctx, ADMIN, "kept", {"description": "described"}),
    )
    assert outcomes == [None, None]
    flow = flows.get_flow(ctx, ADMIN, "kept")
    assert (flow.name, flow.description) == ("renamed", "described")


def test_a_definition_carried_by_a_run_of_a_flow_deleted_meanwhile_is_not_kept(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember = ingest.remember_definitions

    def deleted_first(c: Context, staged: list[ingest.Staged]) -> None:
        if c.directory.flow("doomed") is not None:
            flows.delete_flow(c, ADMIN, "doomed")
        remember(c, staged)

    monkeypatch.setattr(ingest, "remember_definitions", deleted_first)
    item = {**_run("doomed", 0), "flow": {"nodes": [{"id": "n1", "type": "model"}], "edges": []}}
    [result] = ingest.save_executions(ctx, ADMIN, [item])
    assert (result.status, result.detail) == ("refused", FLOW_NOT_FOUND)
    versions = ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM flow_versions WHERE flow_id = 'doomed'").fetchall()
    )
    assert versions == [(0,)]


def test_a_flows_retention_policy_goes_with_it_and_is_not_set_after_its_delete(ctx: Context) -> None:
    from analytics.retention import policies
    from analytics.retention.policies import Policy

    def rows() -> list[tuple[str]]:
        return ctx.store.read(
            lambda c: c.execute("SELECT flow_id FROM retention_policies ORDER BY 1").fetchall()
        )

    policies.set_policy(ctx, ADMIN, Policy(keep_last=5), "kept")
    delete, policy = in_one_commit(
        ctx,
        lambda: flows.delete_flow(ctx, ADMIN, "doomed"),
        lambda: policies.set_policy(ctx, ADMIN, Policy(keep_last=3), "doomed"),
    )
    assert delete is None and isinstance(policy, NotFound) and policy.detail == FLOW_NOT_FOUND
    assert rows() == [("kept",)]
    flows.delete_flow(ctx, ADMIN, "kept")
    assert rows() == []  # the policy of a deleted flow stayed forever


def test_a_run_deleted_while_a_search_reads_its_payloads_is_left_out(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's rows are read first, each run's detail next: a run deleted in between made the
    whole search a 404 "Execution not found"."""
    from analytics.history import search

    ids = [ingest.save_execution(ctx, ADMIN, _run("kept", i), flow_id="kept").id for i in range(3)]
    detail = search.get_execution

    def deleted_first(c: Context, viewer: Viewer, flow_id: str, run_id: str) -> Any:
        if run_id == ids[1]:
            history.delete_execution(c, ADMIN, flow_id, run_id)
        return detail(c, viewer, flow_id, run_id)

    monkeypatch.setattr(search, "get_execution", deleted_first)
    page = search.search_executions(ctx, ADMIN, include_payloads=True)
    assert [hit.row.id for hit in page.items] == [ids[2], ids[0]]  # newest first, the deleted one out
    assert all(hit.execution is not None for hit in page.items)


def test_a_save_whose_request_went_away_commits_without_an_error_in_the_log(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """A request cut off (or a server stopping) cancels the save's answer; the commit then set
    it and logged "exception calling callback ... InvalidStateError" at ERROR."""
    import threading

    started, release = threading.Event(), threading.Event()
    held = ctx.store.submit(lambda _: started.set() or release.wait(30))
    assert started.wait(30)
    form = ingest.parse_form({"flow_id": "kept", "status": "success", "execution_time": 1})
    answer = ingest.save(ctx, ADMIN, form)
    assert answer.cancel()  # the request is gone before the commit
    with caplog.at_level("ERROR"):
        release.set()
        held.result()
        ctx.store.write(lambda _: None)  # after the save's commit and its callbacks
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert history.get_stats(ctx, ADMIN, "kept").total_executions == 1  # stored all the same
