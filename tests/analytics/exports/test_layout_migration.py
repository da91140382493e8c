"""An export written by the old layout (each `date=` entry a symlink into `_versions/`) becomes
real folders at the next cycle, compaction or archive write, keeping its files and their names."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analytics.core.context import Context
from analytics.exports import compact, publish_partitioned, run_export
from analytics.exports.targets import LocalTarget
from tests.factories.exports import add_runs, read, seed_flow

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def make_legacy(root: Path) -> None:
    """Turn every partition into the old layout: the files in `_versions/<table>/date=X/<v>/`,
    `date=X` a relative symlink to it, and one retired version beside it."""
    for table in ("executions", "execution_nodes"):
        if not (root / table).is_dir():
            continue
        for entry in (root / table).iterdir():
            if entry.is_symlink():
                continue
            version = root / "_versions" / table / entry.name / str(uuid.uuid4())
            version.parent.mkdir(parents=True)
            os.rename(entry, version)
            os.symlink(os.path.relpath(version, entry.parent), entry)
            retired = version.with_name(str(uuid.uuid4()))
            retired.mkdir()
            (retired / f"{uuid.uuid4()}.parquet").write_bytes(b"PAR1 an old version")


def links(root: Path) -> list[Path]:
    return [Path(d, n) for d, dirs, files in os.walk(root) for n in dirs + files if Path(d, n).is_symlink()]


def names(root: Path, table: str) -> set[str]:
    return {f.name for f in (root / table).glob("date=*/*.parquet")}


def count_recursive(root: Path) -> list[tuple[int, int]]:
    glob = f"{root}/executions/**/*.parquet"
    sql = f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{glob}', hive_partitioning = true)"
    return duckdb.sql(sql).fetchall()


def test_the_next_cycle_turns_links_into_real_folders(ctx: Context) -> None:
    root = ctx.settings.data_dir / "exports"
    ctx.settings.export_grace_s = 0
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 4)
    run_export(ctx)
    make_legacy(root)
    before = {t: names(root, t) for t in ("executions", "execution_nodes")}
    assert links(root) and len(before["executions"]) == 3
    with pytest.raises(duckdb.IOException, match="No files found"):  # the bug the new layout fixes
        count_recursive(root)

    summary = run_export(ctx)  # nothing changed in the store: the cycle only migrates
    assert summary["rows_written"] == {"executions": 0, "execution_nodes": 0}
    assert links(root) == []
    assert {t: names(root, t) for t in before} == before  # the same files, by name
    assert count_recursive(root) == [(12, 12)]
    assert read(root, "SELECT count(*) FROM t", "execution_nodes") == ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM execution_nodes").fetchall()
    )
    run_export(ctx)  # the retired versions go after the grace period (0 here): the next cycle
    assert not (root / "_versions").exists()

    add_runs(ctx, flow, DAYS[:1], 2)  # and it keeps working as an export
    assert run_export(ctx)["days_appended"] == 1
    assert count_recursive(root) == [(14, 14)]


def test_compaction_migrates_too(ctx: Context) -> None:
    root = ctx.settings.data_dir / "exports"
    ctx.settings.export_max_files_per_partition = 1
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 2)
    run_export(ctx)
    add_runs(ctx, flow, DAYS[:1], 2)
    run_export(ctx)
    make_legacy(root)
    assert compact(ctx)["partitions_compacted"]["executions"] == 1
    assert links(root) == []
    assert count_recursive(root) == [(8, 8)]


def test_an_archive_write_migrates_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    target = LocalTarget(root, str(root))
    day = datetime(2026, 11, 1, 12, tzinfo=UTC)
    at = pa.array([day], pa.timestamp("us", tz="UTC"))
    publish_partitioned(pa.table({"id": ["a"], "created_at": at}), target, "executions")
    make_legacy(root)
    publish_partitioned(pa.table({"id": ["b"], "created_at": at}), target, "executions")
    assert links(root) == []
    assert count_recursive(root) == [(2, 2)]


def test_a_dangling_link_is_written_again(ctx: Context) -> None:
    root = ctx.settings.data_dir / "exports"
    flow = seed_flow(ctx)
    add_runs(ctx, flow, DAYS, 2)
    run_export(ctx)
    make_legacy(root)
    for table in ("executions", "execution_nodes"):  # a version folder lost by hand
        link = root / table / "date=2026-11-02"
        shutil.rmtree(link.resolve())
    summary = run_export(ctx)
    assert summary["days_written"] == 1 and summary["rows_written"]["executions"] == 2
    assert links(root) == []
    assert count_recursive(root) == [(6, 6)]
