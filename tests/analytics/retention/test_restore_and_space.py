"""Archive then restore round-trips exactly; payload trims keep every metric; the file shrinks."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.cost import report as cost_report
from analytics.history import runs as history
from analytics.retention import apply, policies, reclaim_space, restore
from analytics.retention.policies import Policy
from analytics.trends import metrics as trends
from tests.factories import make_execution
from tests.factories.retention import ADMIN, NOW, OWNER, all_rows, generate, make_flows


def test_archive_then_restore_round_trips_exactly(ctx: Context) -> None:
    ids = make_flows(ctx, ["a", "b"])
    generate(ctx, list(ids.values()), 600)
    original = all_rows(ctx)
    stats = {f: history.get_stats(ctx, OWNER, f) for f in ids.values()}
    # trim first (payloads of runs older than 10 days), later delete everything older than 20
    policies.set_policy(ctx, ADMIN, Policy(payload_ttl_days=10))
    first = apply.run_retention(ctx, now=NOW, compact=False)
    assert first["trimmed"] > 0
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=20))
    second = apply.run_retention(ctx, now=NOW, compact=False)
    assert second["deleted"] > 0
    now_rows = all_rows(ctx)
    gone = set(original) - set(now_rows)
    still_trimmed = {i for i, row in now_rows.items() if row != original[i]}
    assert still_trimmed

    # one flow, part of the range: only those come back, with their payloads
    start, end = NOW - timedelta(days=60), NOW - timedelta(days=30)
    part = restore.restore(ctx, start=start, end=end, flow_id=ids["a"])
    back = {i for i in gone if original[i][0] == ids["a"] and start <= original[i][4] < end}
    assert part["restored"] == len(back) > 0
    rows = all_rows(ctx)
    assert {i for i in rows if i in gone} == back
    for i in back:
        assert rows[i] == original[i]

    # everything: the store is what it was before retention, payloads included
    full = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert full["restored"] == len(gone) - len(back)
    assert full["already_present"] >= len(back)
    assert full["refilled"] == len(still_trimmed)
    assert all_rows(ctx) == original
    for f, s in stats.items():
        assert history.get_stats(ctx, OWNER, f) == s  # counters rebuilt for the restored flows
    # again: nothing new, every id skipped
    again = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert (again["restored"], again["refilled"]) == (0, 0)


def test_restore_skips_runs_of_deleted_flows_and_checks_its_range(ctx: Context) -> None:
    from analytics.flows import registry as flows

    ids = make_flows(ctx, ["gone"])
    generate(ctx, [ids["gone"]], 50)
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=1))
    apply.run_retention(ctx, now=NOW, compact=False)
    flows.delete_flow(ctx, OWNER, ids["gone"])
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW)
    assert out["restored"] == 0 and out["unknown_flow"] > 0
    with pytest.raises(InvalidInput) as err:
        restore.restore(ctx, start=NOW, end=NOW)
    assert err.value.field == "end"


def _archived_away(ctx: Context, name: str, runs: int) -> tuple[str, list[str]]:
    """A flow of OWNER's whose `runs` runs a pass deleted into the archive, and the flow purged."""
    from analytics.flows import registry as flows

    fid = make_flows(ctx, [name])[name]
    ids = [r.id for r in generate(ctx, [fid], runs)]
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=1))
    assert apply.run_retention(ctx, now=NOW, compact=False)["deleted"] == runs
    policies.delete_policy(ctx, ADMIN, None)
    flows.purge_flow(ctx, fid)
    return fid, ids


def _mirror(ctx: Context, fid: str, owner: str, created: datetime) -> None:
    """The flow id back, as Open WebUI's sync writes it (analytics/openwebui/sync.py)."""
    from analytics.flows import registry as flows

    flows.mirror_flows(ctx, [flows.Flow(fid, owner, "back", None, [], [], {}, None, created, created, "v")])


@pytest.mark.parametrize("owner", ["other", "owner"])
def test_archived_runs_go_back_only_to_their_flows_owner(ctx: Context, owner: str) -> None:
    """Open WebUI re-created the id for another user: another flow, which must never get the old
    runs (restore once checked only that the id existed). Back with its owner: they come back."""
    fid, ids = _archived_away(ctx, "x", 30)
    _mirror(ctx, fid, owner, NOW)
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    stored = set(all_rows(ctx))
    if owner == "other":
        assert (out["restored"], out["other_owner"], out["unknown_flow"]) == (0, 30, 0)
        assert not stored & set(ids)
    else:
        assert (out["restored"], out["other_owner"]) == (30, 0)
        assert set(ids) <= stored


def test_an_archive_without_owners_gives_runs_only_to_a_flow_older_than_them(ctx: Context) -> None:
    """Archives written before `flow_owner` was kept: the flow that has the id now must have
    existed when the run was made."""
    from analytics.retention import archive

    fid, ids = _archived_away(ctx, "y", 30)
    for path in (archive.archive_root(ctx.settings) / "executions").glob("date=*/*.parquet"):
        duckdb.sql(
            f"COPY (SELECT * EXCLUDE (flow_owner) FROM read_parquet('{path}')) TO '{path}.old' (FORMAT parquet)"
        )
        path.with_name(path.name + ".old").replace(path)
    _mirror(ctx, fid, "other", NOW)  # made after every one of its runs: another flow
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert (out["restored"], out["other_owner"]) == (0, 30)
    _mirror(ctx, fid, "other", datetime(2000, 1, 1))  # older than them: theirs
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert (out["restored"], out["other_owner"]) == (30, 0)
    assert set(ids) <= set(all_rows(ctx))


def test_the_archive_holds_each_runs_own_outputs(ctx: Context) -> None:
    """The store keeps `outputs` NULL where it equals node_results (the editor's runs); the
    archive once did too, so a reader of its Parquet saw no outputs. Restore shares it again."""
    from analytics.retention import archive

    fid = make_flows(ctx, ["o"])["o"]
    generate(ctx, [fid], 20)
    original = all_rows(ctx)
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=1))
    apply.run_retention(ctx, now=NOW, compact=False)
    files = [str(p) for p in (archive.archive_root(ctx.settings) / "executions").glob("date=*/*.parquet")]
    rows = duckdb.sql(
        f"SELECT outputs, node_results, outputs_same FROM read_parquet({files!r})"
        " WHERE node_results IS NOT NULL"
    ).fetchall()
    assert rows and all(same and out == nodes for out, nodes, same in rows)
    restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert all_rows(ctx) == original  # outputs NULL again where shared


def _close(got: object, want: object) -> bool:
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for k in want:
            _close(got[k], want[k])
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _close(g, w)
    else:
        assert got == want
    return True


def test_payload_ttl_keeps_trends_cost_stats_and_nodes(ctx: Context) -> None:
    ids = make_flows(ctx, ["t"])
    generate(ctx, [ids["t"]], 400, days=40)
    q = trends.MetricsQuery(
        measures=["runs", "failure_rate", "p95_duration", "tokens_in", "tokens_out", "cost"],
        start=NOW - timedelta(days=41),
        end=NOW + timedelta(days=1),
        bucket="day",
    )
    by_node = trends.MetricsQuery(measures=["runs", "cost"], start=q.start, end=q.end, group_by="node")

    def snapshot() -> tuple[object, ...]:
        return (
            trends.metrics(ctx, ADMIN, q).rows.to_pylist(),
            trends.metrics(ctx, ADMIN, by_node).totals.to_pylist(),
            cost_report.cost_report(ctx, ADMIN, start=q.start, end=q.end).to_pylist(),
            history.get_stats(ctx, OWNER, ids["t"]),
        )

    before = snapshot()
    policies.set_policy(ctx, ADMIN, Policy(payload_ttl_days=5))
    out = apply.run_retention(ctx, now=NOW, compact=False)
    assert out["trimmed"] > 300 and out["deleted"] == 0
    # equal, floats to 12 digits: DuckDB's parallel sums of doubles may add in another order
    assert _close(snapshot(), before)
    left = ctx.store.read(
        lambda c: c.execute(
            "SELECT count(*) FROM executions WHERE node_results IS NOT NULL AND created_at < ?",
            [NOW - timedelta(days=5)],
        ).fetchall()
    )
    assert left[0][0] == 0


def test_deleting_most_runs_shrinks_the_file(ctx: Context) -> None:
    ids = make_flows(ctx, ["big", "small"])
    made = generate(ctx, list(ids.values()), 8000, days=100, pad=6000)
    ctx.store.read(lambda c: c.execute("CHECKPOINT").fetchall())
    nodes_before = ctx.store.read(
        lambda c: c.execute(
            "SELECT count(*) FROM execution_nodes WHERE created_at >= ?", [NOW - timedelta(days=10)]
        )
    ).fetchall()[0][0]
    size_before = reclaim_space.store_bytes(ctx.store.path)
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=10))
    out = apply.run_retention(ctx, now=NOW)
    kept = sum(1 for r in made if r.created_at >= NOW - timedelta(days=10))
    assert out["deleted"] == len(made) - kept and out["compaction"]["rows"] == kept
    assert out["compaction"]["checkpointed"]
    assert out["bytes_before"] >= size_before
    assert out["bytes_after"] < size_before / 3, (size_before, out["bytes_after"])

    # the rebuilt table is the same table: key, checks, index, view, ingest, counters
    def q(sql: str) -> list[tuple[object, ...]]:
        return ctx.store.read(lambda c: c.execute(sql).fetchall())

    assert q("SELECT count(*) FROM execution_nodes")[0][0] == nodes_before
    assert q("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'executions'") == [
        ("executions_flow_id",)
    ]
    kinds = {
        r[0] for r in q("SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'executions'")
    }
    assert {"PRIMARY KEY", "CHECK", "NOT NULL"} <= kinds
    some = q("SELECT id::VARCHAR FROM executions LIMIT 1")[0][0]
    with pytest.raises(duckdb.ConstraintException):
        ctx.store.write(
            lambda c: c.execute("INSERT INTO executions SELECT * FROM executions WHERE id = ?", [some])
        )
    with pytest.raises(duckdb.ConstraintException):
        ctx.store.write(lambda c: c.execute("UPDATE executions SET status = 'nope' WHERE id = ?", [some]))
    from analytics.history import ingest

    ingest.save_execution(ctx, OWNER, make_execution(ids["small"]), flow_id=ids["small"])
    total = sum(history.get_stats(ctx, OWNER, f).total_executions for f in ids.values())
    assert total == kept + 1 == q("SELECT count(*) FROM executions")[0][0]
    # sorted by flow, then time
    order = q("SELECT flow_id, created_at FROM executions WHERE rowid < 1000000 ORDER BY rowid")
    assert order[:-1] == sorted(order[:-1])


@pytest.mark.parametrize("where", ["another user's flow", "the same flow"])
def test_an_id_posted_again_after_its_delete_is_not_given_the_old_payload(ctx: Context, where: str) -> None:
    """Restore refilled any stored run of that id without a payload: an id posted again (to
    another user's flow, or to its own after a delete) got the archived run's prompts."""
    from analytics.flows import registry as flows
    from analytics.history import ingest
    from tests.factories import OTHER

    fid = make_flows(ctx, ["x"])["x"]
    old = generate(ctx, [fid], 1)[0]
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=1))
    assert apply.run_retention(ctx, now=NOW, compact=False)["deleted"] == 1
    policies.delete_policy(ctx, ADMIN, None)
    target = fid
    if where != "the same flow":
        target = flows.create_flow(ctx, OTHER, name="y", nodes=[], edges=[], access_control=None).id
    again = make_execution(
        target, id=old.id, created_at=NOW.isoformat(), inputs=None, outputs=None, node_results=None
    )
    assert ingest.save_executions(ctx, ADMIN, [again])[0].status == "stored"
    before = all_rows(ctx)[old.id]
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert out["refilled"] == 0 and out["already_present"] == 1, out
    assert all_rows(ctx)[old.id] == before


def test_a_trimmed_run_deleted_and_posted_again_as_another_run_keeps_what_it_holds(ctx: Context) -> None:
    """A delete through the API writes nothing to the archive, so its last copy is still the trim:
    a run posted again under that id with the same time and user but another status (another
    run) was refilled with the old prompts."""
    from analytics.history import ingest
    from analytics.history import runs as history_runs

    fid = make_flows(ctx, ["x"])["x"]
    made = generate(ctx, [fid], 20)
    policies.set_policy(ctx, ADMIN, Policy(payload_ttl_days=1))
    trimmed = apply.run_retention(ctx, now=NOW, compact=False)["trimmed"]
    old = next(r for r in made if r.has_payload and r.created_at < NOW - timedelta(days=1))
    policies.delete_policy(ctx, ADMIN, None)
    ((user,),) = ctx.store.read(
        lambda c: c.execute("SELECT user_id FROM executions WHERE id = ?", [old.id]).fetchall()
    )
    history_runs.delete_execution(ctx, ADMIN, fid, old.id)
    again = make_execution(
        fid,
        id=old.id,
        created_at=old.created_at.isoformat(),
        user_id=user,
        status="aborted" if old.status != "aborted" else "success",
        inputs=None,
        outputs=None,
        node_results=None,
    )
    assert ingest.save_executions(ctx, ADMIN, [again])[0].status == "stored"
    before = all_rows(ctx)[old.id]
    out = restore.restore(ctx, start=datetime(2000, 1, 1), end=NOW + timedelta(days=1))
    assert out["refilled"] == trimmed - 1, out  # the others were the runs trimmed
    assert all_rows(ctx)[old.id] == before
