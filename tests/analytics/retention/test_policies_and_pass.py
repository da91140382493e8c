"""Retention on a real store: every rule against a plain-Python recomputation, dry run == pass,
counters after the pass, nothing changed on bad input."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, FolderFull, InvalidInput
from analytics.history import runs as history
from analytics.retention import apply, archive, plan, policies, runs
from analytics.retention.policies import Policy
from tests.factories.disk import fill
from tests.factories.retention import ADMIN, NOW, OWNER, all_rows, annotate, expected, generate, make_flows


@pytest.fixture
def world(ctx: Context) -> tuple[Context, dict[str, str], list]:
    ids = make_flows(ctx, ["a", "b", "c", "d"])
    made = generate(ctx, list(ids.values()), 1200)
    annotate(ctx, made)
    return ctx, ids, made


def _counts(ctx: Context, flow_id: str) -> tuple[int, int, int, int, float]:
    """Stats recomputed from the table, to hold the in-memory counters against."""
    row = ctx.store.read(
        lambda c: c.execute(
            "SELECT count(*), count(*) FILTER (WHERE status='success'), count(*) FILTER (WHERE status='error'),"
            " count(*) FILTER (WHERE status='aborted'), coalesce(round(avg(execution_time)), 0)"
            " FROM executions WHERE flow_id = ?",
            [flow_id],
        ).fetchall()
    )[0]
    return row[0], row[1], row[2], row[3], float(row[4])


def _set(ctx: Context, table: dict[str, Policy]) -> None:
    for key, p in table.items():
        policies.set_policy(ctx, ADMIN, p, None if key == "*" else key)


def test_every_rule_matches_an_independent_computation(world: tuple[Context, dict[str, str], list]) -> None:
    ctx, ids, made = world
    table = {
        "*": Policy(max_age_days=30, failed_max_age_days=60, payload_ttl_days=10),
        ids["b"]: Policy(keep_last=40),  # replaces the global policy as a whole: no age limit
        ids["c"]: Policy(max_age_days=5, keep_last=100, payload_ttl_days=2, archive=False),
    }
    _set(ctx, table)
    want_delete, want_trim = expected(made, table, NOW)
    assert want_delete and want_trim  # the data exercises both
    assert any(r.annotated and r.created_at < NOW - timedelta(days=60) for r in made)

    dry = plan.dry_run(ctx, ADMIN, now=NOW, ids_limit=100_000)
    got_delete = {i for f in dry.flows for i in f.delete_ids}
    got_trim = {i for f in dry.flows for i in f.trim_ids}
    assert got_delete == want_delete
    assert got_trim == want_trim
    assert (dry.delete, dry.trim, dry.ids_truncated) == (len(want_delete), len(want_trim), False)
    for f in dry.flows:
        flow_runs = {r.id for r in made if r.flow_id == f.flow_id}
        assert f.delete == len(want_delete & flow_runs) and f.trim == len(want_trim & flow_runs)

    before = all_rows(ctx)
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    after = all_rows(ctx)
    # the pass did exactly what the dry run said
    assert set(before) - set(after) == want_delete
    assert (summary["deleted"], summary["trimmed"]) == (len(want_delete), len(want_trim))
    trimmed = {i for i in after if after[i] != before[i]}
    assert trimmed == want_trim
    cols = ctx.store.read(
        lambda c: c.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'executions' ORDER BY column_index"
        ).fetchall()
    )
    names = [c[0] for c in cols if c[0] != "id"]
    heavy = {"inputs", "outputs", "node_results", "outputs_same"}
    order = [
        n for n in names if n not in {"inputs", "outputs", "node_results", "errors", "meta", "replay_of"}
    ]
    order += ["inputs", "outputs", "node_results", "errors", "meta", "replay_of"]
    for i in want_trim:
        for name, old, new in zip(order, before[i], after[i], strict=True):
            if name in heavy:
                assert new in (None, False), (name, new)
            else:
                assert new == old, name  # metrics, nodes, tokens, cost, errors, meta kept
    # annotated runs (note, tag or rating) were never touched
    for r in made:
        if r.annotated:
            assert after[r.id] == before[r.id]
    # archived: every removed run of flows whose policy archives, none of flow c's
    archived_flows = {f["flow_id"] for f in summary["flows"] if f["deleted"] or f["trimmed"]} - {ids["c"]}
    n_archived = sum(
        1 for r in made if r.flow_id in archived_flows and (r.id in want_delete or r.id in want_trim)
    )
    assert summary["archived"] == n_archived
    # counters equal the table, for every flow and for a reader who sees only their own runs
    for fid in ids.values():
        s = history.get_stats(ctx, OWNER, fid)
        assert (
            s.total_executions,
            s.success_count,
            s.error_count,
            s.aborted_count,
            s.avg_execution_time,
        ) == (_counts(ctx, fid))
    other = ctx.counters.stats(ids["a"], only_user="other").total_executions
    assert other == sum(1 for i in after if before[i][0] == ids["a"] and before[i][1] == "other")
    # a second pass at the same moment has nothing left to do
    again = plan.dry_run(ctx, ADMIN, now=NOW)
    assert (again.delete, again.trim) == (0, 0)
    # the pass is logged with its result
    [last] = runs.list_runs(ctx, limit=1)
    assert last.ok and last.kind == "retention" and last.summary["deleted"] == len(want_delete)


def test_pages_are_right_after_a_pass(ctx: Context) -> None:
    ids = make_flows(ctx, ["p"])
    made = generate(ctx, [ids["p"]], 300, days=10)
    for page in (1, 2, 3, 4):  # remember every page start
        history.list_executions_page(ctx, OWNER, ids["p"], page=page)
    _set(ctx, {ids["p"]: Policy(keep_last=100)})
    apply.run_retention(ctx, now=NOW, compact=False)
    newest = sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)[:100]
    got = [s.id for p in (1, 2) for s in history.list_executions_page(ctx, OWNER, ids["p"], page=p)]
    assert got == [r.id for r in newest][:120]
    assert history.list_executions_page(ctx, OWNER, ids["p"], page=3) == []


def test_dry_run_with_a_candidate_policy_changes_nothing(world: tuple[Context, dict[str, str], list]) -> None:
    ctx, ids, made = world
    before = all_rows(ctx)
    candidate = Policy(max_age_days=20)
    dry = plan.dry_run(ctx, OWNER, flow_id=ids["a"], candidate=candidate, now=NOW, ids_limit=5)
    want, _ = expected([r for r in made if r.flow_id == ids["a"]], {ids["a"]: candidate}, NOW)
    assert dry.delete == len(want) and dry.ids_truncated
    assert len(dry.flows[0].delete_ids) == 5 and set(dry.flows[0].delete_ids) <= want
    assert [f.flow_id for f in dry.flows] == [ids["a"]]
    assert all_rows(ctx) == before
    assert policies.get_policy(ctx, ADMIN, ids["a"]) is None  # a candidate is not saved


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (Policy(max_age_days=-1), "max_age_days"),
        (Policy(max_age_days=0), "max_age_days"),
        (Policy(failed_max_age_days=float("nan")), "failed_max_age_days"),
        (Policy(max_age_days=30, failed_max_age_days=10), "failed_max_age_days"),
        (Policy(keep_last=0), "keep_last"),
        (Policy(keep_last=True), "keep_last"),  # type: ignore[arg-type]
        (Policy(payload_ttl_days=1e12), "payload_ttl_days"),
    ],
)
def test_bad_policies_name_the_field_and_store_nothing(ctx: Context, policy: Policy, field: str) -> None:
    ids = make_flows(ctx, ["v"])
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=90))
    with pytest.raises(InvalidInput) as err:
        policies.set_policy(ctx, ADMIN, policy)
    assert err.value.field == field
    with pytest.raises(InvalidInput):
        policies.set_policy(ctx, OWNER, policy, ids["v"])
    with pytest.raises(InvalidInput):
        plan.dry_run(ctx, ADMIN, candidate=policy, now=NOW)
    stored = policies.get_policy(ctx, ADMIN)
    assert stored is not None and stored.policy == Policy(max_age_days=90)
    assert policies.get_policy(ctx, ADMIN, ids["v"]) is None


def test_who_may_set_and_plan(ctx: Context) -> None:
    ids = make_flows(ctx, ["o"])
    stranger = Viewer("other", "user")
    with pytest.raises(AccessDenied):
        policies.set_policy(ctx, OWNER, Policy(max_age_days=1))  # global: admins only
    with pytest.raises(AccessDenied):
        policies.set_policy(ctx, stranger, Policy(max_age_days=1), ids["o"])  # public read is not ownership
    with pytest.raises(AccessDenied):
        plan.dry_run(ctx, OWNER, now=NOW)
    with pytest.raises(AccessDenied):
        plan.dry_run(ctx, stranger, flow_id=ids["o"], now=NOW)
    stored = policies.set_policy(ctx, OWNER, Policy(keep_last=3), ids["o"])
    assert stored.updated_by == "owner"
    assert policies.get_policy(ctx, stranger, ids["o"]) == stored  # readers may see it
    assert policies.delete_policy(ctx, OWNER, ids["o"]) is True
    assert policies.get_policy(ctx, OWNER, ids["o"]) is None


def test_one_pass_at_a_time(ctx: Context) -> None:
    with runs.exclusive("retention"):
        from analytics.core.errors import Conflict

        with pytest.raises(Conflict):
            apply.run_retention(ctx, now=NOW)


def test_archive_lands_in_the_export_layout(
    world: tuple[Context, dict[str, str], list], tmp_path: Path
) -> None:
    ctx, _, _ = world
    _set(ctx, {"*": Policy(max_age_days=50)})
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    root = Path(summary["archive_root"])
    assert root == ctx.settings.db_path.parent / "archive"
    files = sorted((root / "executions").glob("date=*/*.parquet"))
    assert len(files) == summary["archive_files"] > 0
    assert not any((root / "_staging").iterdir())  # staging emptied
    import duckdb

    con = duckdb.connect()
    n, bad = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE strftime(created_at, '%Y-%m-%d') <> date::VARCHAR)"
        " FROM read_parquet(?, hive_partitioning = true)",
        [[str(f) for f in files]],
    ).fetchall()[0]
    assert (n, bad) == (summary["archived"], 0)


def _archive_disk_full_fails_the_pass_alone(
    ctx: Context, ids: dict[str, str], made: list, caplog: pytest.LogCaptureFixture
) -> None:
    """The pass fails at once with the archive folder named; nothing deleted; the store is not
    in its full mode and keeps its reserve; writes go on; the pass is logged as failed."""
    table = {"*": Policy(max_age_days=30)}
    _set(ctx, table)
    before = all_rows(ctx)
    caplog.set_level(logging.WARNING)
    with pytest.raises(FolderFull, match=r"^the archive folder's disk is full"):
        apply.run_retention(ctx, now=NOW, compact=False)
    assert all_rows(ctx) == before
    assert not ctx.store.full and ctx.store.has_reserve
    assert not any("store's disk is full" in m for m in caplog.messages), caplog.messages
    [last] = runs.list_runs(ctx, limit=1)
    assert not last.ok and last.error is not None and "archive folder's disk is full" in last.error
    more = generate(ctx, [ids["a"]], 5, seed=99, days=1)  # ingest goes on
    assert len(all_rows(ctx)) == len(before) + len(more)
    assert ctx.store.writer_state == "alive"


def test_an_archive_folder_on_a_full_disk_fails_the_pass_alone(
    world: tuple[Context, dict[str, str], list],
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The archive folder on a disk of its own, full (the tester's pass took 175 s, ended in a
    RecursionError, and left the writer failing every write until a restart)."""
    ctx, ids, made = world
    monkeypatch.setattr(ctx.settings, "archive_dir", small_disk / "arch")
    filler = fill(small_disk)
    _archive_disk_full_fails_the_pass_alone(ctx, ids, made, caplog)
    filler.unlink()  # room again: the pass runs
    want_delete, _ = expected(made, {"*": Policy(max_age_days=30)}, NOW)
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    assert summary["deleted"] == len(want_delete) > 0 and summary["archived"] == summary["deleted"]


def test_no_room_while_archiving_is_the_passs_failure_not_the_stores(
    world: tuple[Context, dict[str, str], list],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same without a tmpfs: the archive's writer reports no room (DuckDB's error, naming a
    file in the archive folder) while the pass's rows are still streaming from the store."""
    ctx, ids, made = world

    def no_room(reader: object, *_: object, **__: object) -> list[str]:
        raise duckdb.IOException(
            'IO Error: Could not write file "/archive/_staging/x.parquet": No space left on device'
        )

    with monkeypatch.context() as m:
        m.setattr(archive, "publish_partitioned", no_room)
        _archive_disk_full_fails_the_pass_alone(ctx, ids, made, caplog)
    summary = apply.run_retention(ctx, now=NOW, compact=False)
    assert summary["deleted"] > 0
