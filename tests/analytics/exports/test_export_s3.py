"""Exports to an S3-compatible server started on 127.0.0.1 (moto), and faults of the target."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.exports import compact, export_status, run_export
from analytics.history import runs as history
from tests.analytics.exports.s3_server import KEY, FailingProxy, MotoServer
from tests.factories import SECRET
from tests.factories.exports import ADMIN, add_runs, seed_flow
from tests.live_server import free_port

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    name = f"exports-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(name)
    return name


@pytest.fixture
def s3ctx(tmp_path: Path, moto: MotoServer, bucket: str) -> Iterator[Context]:
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        export_url=f"s3://{bucket}/flowhistory/exports",
        export_s3_endpoint=moto.endpoint,
        export_s3_access_key=KEY,
        export_s3_secret_key=KEY,
        export_s3_timeout_s=3,
    )
    with open_context(settings) as c:
        yield c


def s3fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=KEY,
        secret_key=KEY,
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )


def exported_ids(endpoint: str, bucket: str, table: str = "executions", column: str = "id") -> list[str]:
    dataset = ds.dataset(
        f"{bucket}/flowhistory/exports/{table}",
        filesystem=s3fs(endpoint),
        format="parquet",
        partitioning="hive",
    )
    return sorted(dataset.to_table(columns=[column]).column(column).to_pylist())


def store_ids(ctx: Context) -> list[str]:
    return [
        r[0]
        for r in ctx.store.read(
            lambda c: c.execute("SELECT id::VARCHAR FROM executions ORDER BY 1").fetchall()
        )
    ]


def keys(endpoint: str, bucket: str) -> list[str]:
    selector = pafs.FileSelector(f"{bucket}/flowhistory/exports", recursive=True)
    return sorted(i.path for i in s3fs(endpoint).get_file_info(selector) if i.type == pafs.FileType.File)


def test_export_to_s3_incremental_deletes_and_compaction(
    s3ctx: Context, moto: MotoServer, bucket: str
) -> None:
    ctx = s3ctx
    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS, 5)
    summary = run_export(ctx)
    assert summary["days_written"] == 3
    assert exported_ids(moto.endpoint, bucket) == sorted(ids) == store_ids(ctx)
    names = keys(moto.endpoint, bucket)
    assert f"{bucket}/flowhistory/exports/_schema.json" in names
    assert f"{bucket}/flowhistory/exports/flows/flows.parquet" in names
    assert not any("_staging" in n or "_versions" in n for n in names)
    nodes = exported_ids(moto.endpoint, bucket, "execution_nodes", "execution_id")
    assert sorted(set(nodes)) == sorted(ids)

    ctx.settings.export_max_files_per_partition = 1
    add_runs(ctx, flow, DAYS[:1], 2)  # appended as a second file
    history.delete_execution(ctx, ADMIN, flow, ids[-1])  # the last day is rewritten
    summary = run_export(ctx)
    assert summary["days_appended"] == 1 and summary["days_rewritten"] == 1
    assert exported_ids(moto.endpoint, bucket) == store_ids(ctx)
    assert ids[-1] not in exported_ids(moto.endpoint, bucket)

    result = compact(ctx)
    assert result["partitions_compacted"]["executions"] == 1
    assert exported_ids(moto.endpoint, bucket) == store_ids(ctx)
    day1 = [n for n in keys(moto.endpoint, bucket) if "/executions/date=2026-11-01/" in n]
    assert len(day1) == 1
    status = export_status(ctx)
    assert status["ok"] and status["target"] == f"s3://{bucket}/flowhistory/exports"
    assert status["tables"]["executions"]["rows"] == len(store_ids(ctx))


def test_s3_down_is_reported_and_the_next_cycle_catches_up(
    s3ctx: Context, moto: MotoServer, bucket: str
) -> None:
    ctx = s3ctx
    flow = seed_flow(ctx)
    ids = add_runs(ctx, flow, DAYS, 3)
    ctx.settings.export_s3_endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(OSError):
        run_export(ctx)
    status = export_status(ctx)
    assert status["ok"] is False and status["error"] and status["failures_since_ok"] == 1
    assert store_ids(ctx) == sorted(ids)  # the store is untouched
    assert ctx.store.read(lambda c: c.execute("SELECT count(*) FROM export_days").fetchall()) == [(0,)]

    ctx.settings.export_s3_endpoint = moto.endpoint  # back up: the next cycle retries everything
    run_export(ctx)
    assert exported_ids(moto.endpoint, bucket) == sorted(ids)
    status = export_status(ctx)
    assert status["ok"] is True and status["error"] is None and status["failures_since_ok"] == 0


def test_a_server_failing_mid_cycle_publishes_only_whole_files(
    s3ctx: Context, moto: MotoServer, bucket: str
) -> None:
    ctx = s3ctx
    proxy = FailingProxy(moto.port)
    try:
        ctx.settings.export_s3_endpoint = proxy.endpoint
        flow = seed_flow(ctx)
        add_runs(ctx, flow, DAYS, 4)
        # the cycle's name first (the manifest and the schema), the first day's two files and one
        # more, then every upload fails
        proxy.allow_puts = 5
        with pytest.raises(OSError):
            run_export(ctx)
        assert "upload" in export_status(ctx)["error"]
        # what is there is whole (every object reads), and the days finished were recorded
        partial = exported_ids(moto.endpoint, bucket)
        assert 0 < len(partial) < 12 and set(partial) <= set(store_ids(ctx))
        recorded = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM export_days").fetchall())
        assert recorded == [(1,)]

        proxy.allow_puts = None
        summary = run_export(ctx)
        # the unrecorded days again: the one cut between its two tables is rewritten whole
        assert summary["days_written"] + summary["days_rewritten"] == 2
        assert exported_ids(moto.endpoint, bucket) == store_ids(ctx)
    finally:
        proxy.close()


def test_bad_export_url_is_refused(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "store.duckdb", export_url="ftp://example/exports")
    with open_context(settings) as ctx, pytest.raises(ValueError, match="export_url"):
        run_export(ctx)
