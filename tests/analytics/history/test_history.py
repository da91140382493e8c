"""The history library on a real DuckDB file: ordering, cursors, keep-last-N, visibility, stats."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history import runs as history
from tests.factories import OWNER, READER, STRANGER, make_execution

BASE = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def flow_id(ctx: Context) -> str:
    users.create_user(ctx, "owner")
    users.create_user(ctx, "reader")
    return flows.create_flow(ctx, OWNER, name="f", nodes=[], edges=[], access_control=None).id


def _import(
    ctx: Context, flow_id: str, times: list[datetime], *, user: str = "owner", **kw: object
) -> list[str]:
    admin = Viewer("root", "admin")
    items = [
        make_execution(flow_id, created_at=t.isoformat(), user_id=user, execution_time=i, **kw)
        for i, t in enumerate(times)
    ]
    results = ingest.save_executions(ctx, admin, items)
    assert all(r.status == "stored" for r in results), results
    return [r.id for r in results if r.id]


def test_keep_last_n_with_ties_keeps_exactly_n(ctx: Context, flow_id: str) -> None:
    # 30 runs in the same microsecond, 10 older: the peer would keep every tie
    same = [BASE] * 30
    older = [BASE - timedelta(seconds=i + 1) for i in range(10)]
    ids = _import(ctx, flow_id, same + older)
    deleted = history.delete_old_executions_by_flow_id(ctx, flow_id, keep_count=25)
    assert deleted == 15
    remaining = history.list_executions_page(ctx, OWNER, flow_id, page=1)
    assert len(remaining) == 25
    # exactly the newest 25 by (created_at, id): all survivors are ties, the 25 largest ids
    expected = sorted(ids[:30], reverse=True)[:25]
    assert sorted((r.id for r in remaining), reverse=True) == expected
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 25
    node_rows = ctx.store.read(
        lambda c: c.execute("SELECT count(DISTINCT execution_id) FROM execution_nodes").fetchall()
    )
    assert node_rows[0][0] == 25  # node facts of deleted runs went with them


def test_keep_last_n_edge_values(ctx: Context, flow_id: str) -> None:
    _import(ctx, flow_id, [BASE + timedelta(seconds=i) for i in range(5)])
    assert history.delete_old_executions_by_flow_id(ctx, flow_id, keep_count=10) == 0
    assert history.delete_old_executions_by_flow_id(ctx, flow_id, keep_count=0) == 5
    with pytest.raises(InvalidInput):
        history.delete_old_executions_by_flow_id(ctx, flow_id, keep_count=-1)


def test_keep_last_n_of_an_unknown_flow_is_refused(ctx: Context, flow_id: str) -> None:
    """`flowhistory cleanup` asks the library, which names the problem (it used to answer 0)."""
    _import(ctx, flow_id, [BASE + timedelta(seconds=i) for i in range(3)])
    with pytest.raises(NotFound) as refused:
        history.delete_old_executions_by_flow_id(ctx, "no-such-flow", keep_count=0)
    assert refused.value.detail == "unknown flow no-such-flow: no flow has this id; nothing deleted"
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 3


def test_pages_and_cursor_are_stable_with_ties(ctx: Context, flow_id: str) -> None:
    times = [BASE + timedelta(seconds=i // 7) for i in range(130)]  # groups of 7 ties
    ids = _import(ctx, flow_id, times)
    expected = [i for _, i in sorted(zip(times, ids, strict=True), reverse=True)]
    paged = [r.id for p in (1, 2, 3) for r in history.list_executions_page(ctx, OWNER, flow_id, page=p)]
    assert paged == expected
    walked: list[str] = []
    cursor = None
    while True:
        page = history.list_executions(ctx, OWNER, flow_id, limit=17, cursor=cursor)
        assert page.total == 130
        walked += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == expected
    # a run arriving in between does not shift the pages behind a cursor
    first = history.list_executions(ctx, OWNER, flow_id, limit=10)
    ingest.save_execution(ctx, OWNER, make_execution(flow_id), flow_id=flow_id)
    second = history.list_executions(ctx, OWNER, flow_id, limit=10, cursor=first.next_cursor)
    assert [r.id for r in second.items] == expected[10:20]


def test_created_at_keeps_microseconds(ctx: Context, flow_id: str) -> None:
    t = BASE + timedelta(microseconds=123456)
    (eid,) = _import(ctx, flow_id, [t])
    assert history.get_execution(ctx, OWNER, flow_id, eid).created_at == t


def test_reader_sees_only_own_runs_everywhere(ctx: Context, flow_id: str) -> None:
    _import(ctx, flow_id, [BASE] * 3, user="owner", status="error")
    mine = _import(ctx, flow_id, [BASE + timedelta(seconds=1)] * 2, user="reader")
    listed = history.list_executions_page(ctx, READER, flow_id)
    assert sorted(r.id for r in listed) == sorted(mine)
    stats = history.get_stats(ctx, READER, flow_id)
    assert (stats.total_executions, stats.error_count) == (2, 0)
    assert history.list_executions(ctx, READER, flow_id).total == 2
    others = [r.id for r in history.list_executions_page(ctx, OWNER, flow_id) if r.id not in mine]
    with pytest.raises(NotFound):
        history.get_execution(ctx, READER, flow_id, others[0])
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 5


def test_stats_match_an_independent_count(ctx: Context, flow_id: str) -> None:
    statuses = ["success", "error", "aborted", "success", "success", "error"]
    for i, s in enumerate(statuses):
        ingest.save_execution(
            ctx, OWNER, make_execution(flow_id, status=s, execution_time=100 * i + 1), flow_id=flow_id
        )
    stats = history.get_stats(ctx, OWNER, flow_id)
    assert stats.total_executions == 6
    assert (stats.success_count, stats.error_count, stats.aborted_count) == (3, 2, 1)
    assert stats.avg_execution_time == round(sum(100 * i + 1 for i in range(6)) / 6)
    row = ctx.store.read(lambda c: c.execute("SELECT max(created_at) FROM executions").fetchall())
    assert stats.last_execution_at == row[0][0]
    # counters rebuilt from the table on reopen agree with the live ones
    fresh = type(ctx.counters)()
    ctx.store.read(fresh.load)
    assert fresh.stats(flow_id) == stats


def test_delete_one_and_all(ctx: Context, flow_id: str) -> None:
    ids = _import(ctx, flow_id, [BASE + timedelta(seconds=i) for i in range(4)])
    history.delete_execution(ctx, OWNER, flow_id, ids[0])
    with pytest.raises(NotFound, match="Execution not found"):
        history.get_execution(ctx, OWNER, flow_id, ids[0])
    with pytest.raises(NotFound):
        history.delete_execution(ctx, OWNER, flow_id, ids[0])
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 3
    with pytest.raises(AccessDenied):
        history.delete_executions(ctx, READER, flow_id)
    assert history.delete_executions(ctx, OWNER, flow_id) == 3
    assert history.delete_executions(ctx, OWNER, flow_id) == 0
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 0


def test_execution_of_another_flow(ctx: Context, flow_id: str) -> None:
    other = flows.create_flow(ctx, OWNER, name="g", nodes=[], edges=[]).id
    (eid,) = _import(ctx, other, [BASE])
    with pytest.raises(NotFound, match="Execution not found for this flow"):
        history.get_execution(ctx, OWNER, flow_id, eid)
    with pytest.raises(NotFound, match="Execution not found for this flow"):
        history.delete_execution(ctx, OWNER, flow_id, eid)
    assert history.get_execution(ctx, OWNER, other, eid).id == eid


def test_a_run_of_a_flow_the_caller_cannot_read_is_not_found_from_their_own(
    ctx: Context, flow_id: str
) -> None:
    """The peer's "for this flow" tells that the id exists elsewhere: only to who may read it."""
    users.create_user(ctx, "stranger")
    hidden = flows.create_flow(ctx, OWNER, name="hidden", nodes=[], edges=[], access_control={}).id
    (eid,) = _import(ctx, hidden, [BASE])
    theirs = flows.create_flow(ctx, STRANGER, name="theirs", nodes=[], edges=[]).id
    for call in (history.get_execution, history.delete_execution):
        with pytest.raises(NotFound) as refused:
            call(ctx, STRANGER, theirs, eid)
        assert refused.value.detail == "Execution not found"
    # a reader of a public flow sees only their own runs there: another user's run is not theirs
    public = flows.create_flow(ctx, OWNER, name="public", nodes=[], edges=[], access_control=None).id
    (owners,) = _import(ctx, public, [BASE])
    with pytest.raises(NotFound) as refused:
        history.get_execution(ctx, STRANGER, theirs, owners)
    assert refused.value.detail == "Execution not found"
    assert history.get_execution(ctx, OWNER, hidden, eid).id == eid  # still there


def test_outputs_copy_is_stored_once_and_restored(ctx: Context, flow_id: str) -> None:
    run = make_execution(flow_id)
    saved = ingest.save_execution(ctx, OWNER, run, flow_id=flow_id)
    row = ctx.store.read(lambda c: c.execute("SELECT outputs, outputs_same FROM executions").fetchall())
    assert row == [(None, True)]
    got = history.get_execution(ctx, OWNER, flow_id, saved.id)
    assert got.outputs == run["node_results"] and got.node_results == run["node_results"]
    different = make_execution(flow_id, outputs={"content": "x"})
    saved2 = ingest.save_execution(ctx, OWNER, different, flow_id=flow_id)
    assert history.get_execution(ctx, OWNER, flow_id, saved2.id).outputs == {"content": "x"}


def test_remembered_page_starts_always_give_what_offset_gives(ctx: Context, flow_id: str) -> None:
    """Pages served from remembered starts equal a plain OFFSET query, through writes and deletes."""
    import random

    rng = random.Random(7)
    ids = _import(ctx, flow_id, [BASE + timedelta(seconds=rng.randrange(50)) for _ in range(200)])
    size = 7

    def by_offset(page: int) -> list[str]:
        rows = ctx.store.read(
            lambda c: c.execute(
                "SELECT id::VARCHAR FROM executions WHERE flow_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [flow_id, size, (page - 1) * size],
            ).fetchall()
        )
        return [r[0] for r in rows]

    hits = 0
    for step in range(120):
        page = rng.choice([1, 2, 3, 4, 5, 6, 30, 31, 40])
        if ctx.pages.get((flow_id, None, size, page), ctx.counters.version(flow_id)) is not None:
            hits += 1
        got = [r.id for r in history.list_executions_page(ctx, OWNER, flow_id, page=page, page_size=size)]
        assert got == by_offset(page), (step, page)
        if step % 15 == 7:  # a new run, possibly in the middle of the order
            _import(ctx, flow_id, [BASE + timedelta(seconds=rng.randrange(50))])
        if step % 20 == 11:
            history.delete_execution(ctx, OWNER, flow_id, ids.pop(rng.randrange(len(ids))))
    assert hits > 20  # the remembered starts were really used, not always bypassed


def test_keep_last_checks_write_access_and_says_what_is_left(ctx: Context, flow_id: str) -> None:
    """The access check lives in the library (issue 11): a reader may not trim, the owner may."""
    ids = _import(ctx, flow_id, [BASE + timedelta(seconds=i) for i in range(7)])
    with pytest.raises((AccessDenied, NotFound)):
        history.keep_last_executions(ctx, READER, flow_id, 2)
    assert history.get_stats(ctx, OWNER, flow_id).total_executions == 7  # nothing lost
    done = history.keep_last_executions(ctx, OWNER, flow_id, 2)
    assert (done.deleted, done.kept) == (5, 2)
    assert {r.id for r in history.list_executions_page(ctx, OWNER, flow_id)} == set(ids[-2:])


def test_the_mean_duration_rounds_halves_up_from_the_exact_sum() -> None:
    """`round(sum / n)` gave 2 for 2.5 (halves to even) and, past 2**53, rounded the float
    division's error: an exact mean of ...249.4 answered ...250."""
    from analytics.history.counters import whole_ms_mean

    assert whole_ms_mean(5, 2) == 3.0
    assert whole_ms_mean(821, 2) == 411.0
    big = 4 * 2251799813685249 + 2251799813685251
    assert whole_ms_mean(big, 5) == 2251799813685249.0
    assert whole_ms_mean(0, 0) == 0.0
