"""Exports to a local folder: layout and schema, incremental cycles, deletes reaching the export."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics.core.backup import backup, restore
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.exports import EXPORT_SCHEMA_VERSION, export_status, run_export
from analytics.exports.layout import EXECUTION_NODES, EXECUTIONS, FLOWS
from analytics.flows import registry as flows
from analytics.history import runs as history
from tests.factories import make_execution
from tests.factories.exports import ADMIN, add_runs, parquet_files, read, seed_flow

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
UUID_FILE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$")


@pytest.fixture
def root(ctx: Context) -> Path:
    return ctx.settings.data_dir / "exports"


def store_rows(ctx: Context, sql: str) -> list[tuple[object, ...]]:
    return ctx.store.read(lambda c: c.execute(sql).fetchall())


def test_full_export_layout_types_and_contents(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 7)
    progress: list[tuple[int, int]] = []
    summary = run_export(ctx, progress=lambda done, total, _: progress.append((done, total)))

    assert summary["days_written"] == 3 and summary["rows_written"]["executions"] == 21
    assert progress and progress[-1][0] == progress[-1][1]
    # one partition per UTC day, uuid-named zstd files, the date only in the path
    assert sorted(p.name for p in (root / "executions").iterdir()) == [f"date={d}" for d in DAYS]
    for f in parquet_files(root, "executions") + parquet_files(root, "execution_nodes"):
        assert UUID_FILE.match(f.name), f
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    schema = pq.ParquetFile(parquet_files(root, "executions")[0]).schema_arrow
    assert schema.names == [c.name for c in EXECUTIONS.columns]
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("id").type) == "string" and str(schema.field("inputs").type) == "string"
    node_schema = pq.ParquetFile(parquet_files(root, "execution_nodes")[0]).schema_arrow
    assert node_schema.names == [c.name for c in EXECUTION_NODES.columns]

    # the same runs, ids, timestamps (UTC, microseconds), days and nodes as the store
    exported = read(root, "SELECT id, created_at, date, outputs, node_results, len(nodes) FROM t ORDER BY id")
    stored = store_rows(
        ctx,
        "SELECT id::VARCHAR, created_at, created_at::DATE, node_results::VARCHAR, len(nodes)"
        " FROM executions ORDER BY id::VARCHAR",
    )
    assert len(exported) == len(stored) == 21
    for (eid, ets, eday, eout, eres, en), (sid, sts, sday, sres, sn) in zip(exported, stored, strict=True):
        assert eid == sid and eday == sday and en == sn and eres == sres
        assert ets == sts.replace(tzinfo=UTC)
        # the store keeps outputs NULL when it equals node_results; readers get the real value
        assert eout == sres and json.loads(eout)
    nodes = read(root, "SELECT count(*), count(DISTINCT execution_id) FROM t", "execution_nodes")
    assert nodes == store_rows(ctx, "SELECT count(*), count(DISTINCT execution_id) FROM execution_nodes")
    assert pq.read_table(root / "flows" / "flows.parquet").column_names == [c.name for c in FLOWS.columns]

    doc = json.loads((root / "_schema.json").read_text())
    assert doc["export_schema_version"] == EXPORT_SCHEMA_VERSION
    assert [c["name"] for c in doc["tables"]["executions"]["columns"]] == [c.name for c in EXECUTIONS.columns]
    manifest = json.loads((root / "_manifest.json").read_text())
    assert len(manifest["tables"]["executions"]) == 3
    assert all((root / p).is_file() for p in manifest["tables"]["executions"])
    assert not any((root / "_staging").iterdir())

    status = export_status(ctx)
    assert status["ok"] is True and status["tables"]["executions"]["rows"] == 21
    assert status["tables"]["executions"]["files"] == 3


def test_outputs_that_differ_from_node_results_are_kept(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS[:1], 1, outputs={"final": "answer"})
    run_export(ctx)
    [(outputs, same)] = read(root, "SELECT outputs, outputs_same FROM t")
    assert json.loads(outputs) == {"final": "answer"} and same is False


def test_unchanged_store_writes_nothing_and_old_imports_are_appended(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 5)
    run_export(ctx)
    before = {p.name for p in parquet_files(root, "executions")}

    again = run_export(ctx)
    assert again["rows_written"] == {"executions": 0, "execution_nodes": 0}
    assert {p.name for p in parquet_files(root, "executions")} == before

    # an import with an old created_at: only its day changes, by one appended file
    add_runs(ctx, flow, ["2026-11-02"], 2)
    summary = run_export(ctx)
    assert summary["days_appended"] == 1 and summary["days_rewritten"] == 0
    assert summary["rows_written"]["executions"] == 2
    after = {p.name for p in parquet_files(root, "executions")}
    assert before < after and len(after - before) == 1
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(17, 17)]
    assert read(root, "SELECT count(*) FROM t WHERE date = DATE '2026-11-02'") == [(7,)]
    # and a day the export never had is a new partition
    add_runs(ctx, flow, ["2026-10-15"], 1)
    assert run_export(ctx)["days_written"] == 1
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(18, 18)]


def test_deletes_reach_the_export(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    other = seed_flow(ctx, "doomed")
    ids = add_runs(ctx, flow, DAYS, 6)
    add_runs(ctx, other, DAYS, 2)
    lonely = add_runs(ctx, other, ["2026-10-01"], 1)
    run_export(ctx)
    assert read(root, "SELECT count(*) FROM t") == [(25,)]

    history.delete_execution(ctx, ADMIN, flow, ids[0])
    flows.delete_flow(ctx, ADMIN, other)  # its runs go with it, and a day with only its run
    summary = run_export(ctx)
    assert summary["days_rewritten"] >= 1 and summary["days_dropped"] == 1
    remaining = {r[0] for r in read(root, "SELECT id FROM t")}
    assert ids[0] not in remaining and lonely[0] not in remaining
    assert remaining == set(ids[1:])
    assert not (root / "executions" / "date=2026-10-01").exists()
    assert read(root, "SELECT count(DISTINCT execution_id) FROM t", "execution_nodes") == [(17,)]

    history.delete_old_executions_by_flow_id(ctx, flow, 4)  # keep-last-N
    run_export(ctx)
    kept = store_rows(ctx, "SELECT id::VARCHAR FROM executions ORDER BY 1")
    assert read(root, "SELECT id FROM t ORDER BY 1") == kept and len(kept) == 4
    assert read(root, "SELECT count(DISTINCT execution_id) FROM t", "execution_nodes") == [(4,)]


def test_a_run_changed_in_place_is_rewritten(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS, 3)
    run_export(ctx)
    ctx.store.write(lambda c: c.execute("UPDATE executions SET cost = 42.5 WHERE id = ?", [ids[4]]))
    summary = run_export(ctx)
    assert summary["days_rewritten"] == 1 and summary["days_appended"] == 0
    assert read(root, f"SELECT cost FROM t WHERE id = '{ids[4]}'") == [(42.5,)]
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(9, 9)]


def test_a_run_deleted_and_imported_again_on_its_day_is_rewritten(ctx: Context, root: Path) -> None:
    """The same id, the same day, the same node facts and cost: the day's fingerprint did not
    change, and the export kept the old status, time, user and meta."""
    from analytics.history import ingest

    flow = seed_flow(ctx)
    [run_id] = add_runs(ctx, flow, DAYS[:1], 1)
    run_export(ctx)
    [old] = read(root, f"SELECT created_at, node_count, cost FROM t WHERE id = '{run_id}'")
    history.delete_execution(ctx, ADMIN, flow, run_id)
    again = make_execution(
        flow,
        id=run_id,
        user_id="someone",
        status="error",
        execution_time=99_999,
        created_at=old[0].replace(hour=(old[0].hour + 1) % 24).isoformat(),
        meta={"retry": True},
    )
    assert ingest.save_executions(ctx, ADMIN, [again])[0].status == "stored"
    assert run_export(ctx)["days_rewritten"] == 1
    assert read(root, f"SELECT status, execution_time, user_id, meta FROM t WHERE id = '{run_id}'") == [
        ("error", 99_999, "someone", '{"retry":true}')
    ]


def test_a_lost_record_or_a_half_finished_cycle_is_repaired(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 3)
    run_export(ctx)
    # the store forgets what it exported (a crash after publishing, before recording)
    ctx.store.write(lambda c: c.execute("DELETE FROM export_days"))
    add_runs(ctx, flow, DAYS[:1], 2)
    summary = run_export(ctx)
    assert summary["days_rewritten"] == 3
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(11, 11)]


def test_a_lost_node_partition_is_written_again(ctx: Context, root: Path) -> None:
    """A day's `execution_nodes` folder lost outside the product (a cleanup, a partial copy) was
    never written again, while the same loss under `executions` was: the cycle found nothing to
    do and status went on counting the lost rows."""
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 3)
    run_export(ctx)
    before = read(root, "SELECT count(*) FROM t", EXECUTION_NODES.name)
    assert before[0][0] > 0
    shutil.rmtree(root / EXECUTION_NODES.name / f"date={DAYS[1]}")
    summary = run_export(ctx)
    assert summary["days_rewritten"] == 1, summary
    assert read(root, "SELECT count(*) FROM t", EXECUTION_NODES.name) == before
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(9, 9)]
    assert run_export(ctx)["days_rewritten"] == 0  # repaired: nothing more to do


def test_staging_left_by_a_crash_is_cleared(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS[:1], 2)
    crashed = root / "_staging" / "crashed" / "date=2026-11-01"
    crashed.mkdir(parents=True)
    (crashed / "half.parquet").write_bytes(b"PAR1 half")
    run_export(ctx)
    assert not any((root / "_staging").iterdir())
    assert read(root, "SELECT count(*) FROM t") == [(2,)]


def test_status_before_any_cycle(ctx: Context, root: Path) -> None:
    status = export_status(ctx)
    assert status["ok"] is None and status["last_cycle"] is None and status["tables"] == {}
    assert status["target"] == str(root)


def test_a_rewritten_day_is_a_real_folder_of_new_files_only(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS[:2], 3)
    run_export(ctx)
    day = root / "executions" / "date=2026-11-01"
    old = {f.name for f in day.iterdir()}
    other = {f.name for f in (root / "executions" / "date=2026-11-02").iterdir()}
    history.delete_execution(ctx, ADMIN, flow, ids[0])
    assert run_export(ctx)["days_rewritten"] == 1
    assert day.is_dir() and not day.is_symlink()
    new = {f.name for f in day.iterdir()}
    assert len(new) == 1 and not new & old  # a new unique name; the old file is gone at once
    assert {f.name for f in (root / "executions" / "date=2026-11-02").iterdir()} == other
    assert read(root, "SELECT count(*) FROM t WHERE date = DATE '2026-11-01'") == [(2,)]
    assert not (root / "_versions").exists() and not any((root / "_staging").iterdir())
    manifest = json.loads((root / "_manifest.json").read_text())
    assert sorted(manifest["tables"]["executions"]) == sorted(
        str(p.relative_to(root)) for p in parquet_files(root, "executions")
    )


def test_a_trim_of_a_run_with_only_outputs_reaches_the_export(ctx: Context, root: Path) -> None:
    """The day's fingerprint once saw only inputs and node_results: a run whose one payload is
    `outputs` kept it in the export after retention took it from the store."""
    flow = seed_flow(ctx)
    [only_outputs] = add_runs(ctx, flow, DAYS[:1], 1, inputs=None, node_results=None, outputs={"secret": 1})
    run_export(ctx)
    assert read(root, f"SELECT outputs FROM t WHERE id = '{only_outputs}'") == [('{"secret":1}',)]
    ctx.store.write(
        lambda c: c.execute(
            "UPDATE executions SET inputs = NULL, outputs = NULL, node_results = NULL, outputs_same = false"
            " WHERE id = ?",
            [only_outputs],
        )
    )
    assert run_export(ctx)["days_rewritten"] == 1
    assert read(root, f"SELECT inputs, outputs, node_results FROM t WHERE id = '{only_outputs}'") == [
        (None, None, None)
    ]


def test_trimmed_payloads_reach_the_export(ctx: Context, root: Path) -> None:
    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS[:1], 3)
    run_export(ctx)
    # what a retention trim does: payloads gone, metrics kept
    ctx.store.write(
        lambda c: c.execute(
            "UPDATE executions SET inputs = NULL, outputs = NULL, node_results = NULL, outputs_same = false"
            " WHERE id = ?",
            [ids[1]],
        )
    )
    assert run_export(ctx)["days_rewritten"] == 1
    assert read(
        root, f"SELECT inputs, outputs, node_results, execution_time FROM t WHERE id = '{ids[1]}'"
    ) == [(None, None, None, 101)]


def test_a_crash_after_publishing_is_repaired_even_when_the_store_goes_back(
    ctx: Context, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle killed after publishing a day, before recording it, left the day's old record:
    once the store was back at that state (the deleted runs restored), the day was skipped for
    ever, its files still without the runs."""
    from analytics.exports.run import Cycle

    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS, 3)
    run_export(ctx)
    gone = [ids[0], ids[3]]  # one run on each of two days
    quoted = ", ".join(f"'{i}'" for i in gone)
    ctx.store.write(
        lambda c: c.execute(f"CREATE TABLE saved AS SELECT * FROM executions WHERE id IN ({quoted})")
    )
    for run_id in gone:
        history.delete_execution(ctx, ADMIN, flow, run_id)
    with monkeypatch.context() as m:  # killed: nothing recorded after the days were published
        m.setattr(Cycle, "record", lambda self: None)
        run_export(ctx)
    assert read(root, "SELECT count(*) FROM t") == [(7,)]
    ctx.store.write(lambda c: c.execute("INSERT INTO executions SELECT * FROM saved; DROP TABLE saved"))
    run_export(ctx)
    assert read(root, "SELECT id FROM t ORDER BY 1") == store_rows(
        ctx, "SELECT id::VARCHAR FROM executions ORDER BY 1"
    )
    assert read(root, "SELECT count(*) FROM t") == [(9,)]


def test_a_day_whose_files_differ_in_nullability_is_still_appended_to(ctx: Context, root: Path) -> None:
    """DuckDB writes `id` as `not null` or not from the data's statistics (a store compaction
    changed it): the day's ids were read as one table, which refused the two schemas, and
    every later cycle failed."""
    import pyarrow as pa

    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS[:1], 2)
    run_export(ctx)
    [first] = parquet_files(root, "executions")
    table = pq.read_table(first)
    written = table.schema.field("id").nullable  # what DuckDB writes for these runs
    other = pa.schema([f.with_nullable(not written) if f.name == "id" else f for f in table.schema])
    pq.write_table(table.cast(other), first)  # as a file written before a compaction
    for _ in range(2):
        add_runs(ctx, flow, DAYS[:1], 1)
        assert run_export(ctx)["days_appended"] == 1
    assert read(root, "SELECT count(*), count(DISTINCT id) FROM t") == [(4, 4)]


def test_an_export_newer_than_a_restored_store_is_rewritten(settings: Settings, tmp_path: Path) -> None:
    """The export's records live in the store: a store restored from a backup came back with
    records matching its runs while the files held a later state (runs deleted since), and every
    cycle skipped every day: 4 runs exported of the 10 stored, for ever."""
    root = settings.data_dir / "exports"
    with open_context(settings) as ctx:
        flow = seed_flow(ctx)
        add_runs(ctx, flow, DAYS, 4)
        run_export(ctx)
        made = backup(ctx, tmp_path / "backup.duckdb").path
        history.delete_old_executions_by_flow_id(ctx, flow, 4)  # keep-last-N
        run_export(ctx)
        assert read(root, "SELECT count(*) FROM t") == [(4,)]
    restore(made, settings.db_path)
    with open_context(settings) as ctx:
        summary = run_export(ctx)
        assert summary["days_rewritten"] == 1 and summary["days_written"] == 2  # the days it had lost
        assert read(root, "SELECT id FROM t ORDER BY 1") == store_rows(
            ctx, "SELECT id::VARCHAR FROM executions ORDER BY 1"
        )
        assert read(root, "SELECT count(*) FROM t") == [(12,)]
        assert run_export(ctx)["days_rewritten"] == 0  # trusted again from then on


def _failing_after_the_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle that fails after publishing its days (the flows file cannot be written)."""
    from analytics.exports import run as export_run

    def fail(*args: object) -> int:
        raise OSError("the flows file could not be written")

    monkeypatch.setattr(export_run, "copy_whole_file", fail)


def test_a_restored_store_after_a_failed_cycle_is_rewritten(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle that failed after publishing left the manifest on the last good generation, which
    the restored store also knew: its records were trusted, and the export stayed short."""
    root = settings.data_dir / "exports"
    with open_context(settings) as ctx:
        flow = seed_flow(ctx)
        ids = add_runs(ctx, flow, DAYS, 4)
        run_export(ctx)
        made = backup(ctx, tmp_path / "backup.duckdb").path
        for run_id in ids[::4]:  # one run a day
            history.delete_execution(ctx, ADMIN, flow, run_id)
        with monkeypatch.context() as m:
            _failing_after_the_days(m)
            with pytest.raises(OSError):
                run_export(ctx)
        assert read(root, "SELECT count(*) FROM t") == [(9,)]  # the days went out, then it failed
    restore(made, settings.db_path)
    with open_context(settings) as ctx:
        run_export(ctx)
        assert read(root, "SELECT id FROM t ORDER BY 1") == store_rows(
            ctx, "SELECT id::VARCHAR FROM executions ORDER BY 1"
        )
        assert read(root, "SELECT count(*) FROM t") == [(12,)]


def test_a_failed_cycle_then_trusted_again(ctx: Context, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named before it publishes, a failed cycle leaves store and target agreeing: the next one
    repairs what it did not record, and rewrites nothing else."""
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 3)
    run_export(ctx)
    add_runs(ctx, flow, DAYS[:1], 2)
    with monkeypatch.context() as m:
        _failing_after_the_days(m)
        with pytest.raises(OSError):
            run_export(ctx)
    summary = run_export(ctx)
    assert summary["days_rewritten"] == 0 and summary["days_written"] == 0
    assert read(root, "SELECT count(*) FROM t") == [(11,)]


def test_an_export_folder_put_back_from_an_older_copy_is_rewritten(ctx: Context, root: Path) -> None:
    """The day's record said "2 runs, exported"; the files put back held the 3 it had before one
    was deleted: the deleted run was in the export again, for ever."""
    flow = seed_flow(ctx)
    first = add_runs(ctx, flow, DAYS[:1], 3)
    run_export(ctx)
    shutil.copytree(root, root.with_name("exports-old"))
    history.delete_execution(ctx, ADMIN, flow, first[0])
    add_runs(ctx, flow, DAYS[1:], 4)
    run_export(ctx)
    shutil.rmtree(root)
    shutil.copytree(root.with_name("exports-old"), root)  # the folder restored from its own backup
    run_export(ctx)
    assert read(root, "SELECT count(*) FROM t") == [(10,)]
    assert read(root, "SELECT id FROM t ORDER BY 1") == store_rows(
        ctx, "SELECT id::VARCHAR FROM executions ORDER BY 1"
    )


def test_a_compaction_keeps_the_generation(ctx: Context, root: Path) -> None:
    from analytics.exports.partition_merge import compact
    from analytics.exports.run import target_generation
    from analytics.exports.targets import open_target

    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 2)
    generation = run_export(ctx)["generation"]
    compact(ctx)
    assert target_generation(open_target(ctx.settings)) == generation
    assert run_export(ctx)["days_rewritten"] == 0  # nothing distrusted
