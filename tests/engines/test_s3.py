"""The export on an S3-compatible server (moto on 127.0.0.1), read by pyarrow, polars and chdb
straight from the bucket: the same per-day numbers as the store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from analytics.core.config import Settings
from tests.analytics.exports.s3_server import KEY, MotoServer
from tests.engines.conftest import Row, generate
from tests.factories import SECRET

pytestmark = pytest.mark.engines


@dataclass(frozen=True)
class S3Export:
    endpoint: str  # http://127.0.0.1:PORT
    prefix: str  # bucket/prefix of the export root
    expected: list[Row]

    @property
    def host(self) -> str:
        return self.endpoint.removeprefix("http://")


@pytest.fixture(scope="module")
def s3_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Export]:
    folder = tmp_path_factory.mktemp("s3engines")
    server = MotoServer(folder)
    server.start()
    try:
        bucket = f"engines-{uuid.uuid4().hex[:12]}"
        server.create_bucket(bucket)
        settings = Settings(
            db_path=folder / "store.duckdb",
            webui_secret_key=SECRET,
            scheduler_enabled=False,
            export_url=f"s3://{bucket}/flowhistory/exports",
            export_s3_endpoint=server.endpoint,
            export_s3_access_key=KEY,
            export_s3_secret_key=KEY,
        )
        expected = generate(settings)
        yield S3Export(server.endpoint, f"{bucket}/flowhistory/exports", expected)
    finally:
        server.stop()


def per_day(expected: list[Row]) -> list[tuple[str, int, int, int]]:
    return [(day, runs, errors, total) for day, runs, errors, total, *_ in expected]


def test_pyarrow_reads_the_bucket(s3_export: S3Export) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(
        access_key=KEY, secret_key=KEY, endpoint_override=s3_export.host, scheme="http", region="us-east-1"
    )
    dataset = ds.dataset(
        f"{s3_export.prefix}/executions", filesystem=s3, format="parquet", partitioning="hive"
    )
    table = dataset.to_table(columns=["date", "status", "execution_time"])
    table = table.append_column("error", pc.equal(table["status"], "error"))
    daily = table.group_by("date").aggregate(
        [("status", "count"), ("error", "sum"), ("execution_time", "sum")]
    )
    columns = ["date", "status_count", "error_sum", "execution_time_sum"]
    got = sorted(
        (str(d), int(n), int(e), int(t))
        for d, n, e, t in zip(*(daily[c].to_pylist() for c in columns), strict=True)
    )
    assert got == per_day(s3_export.expected)


def test_polars_reads_the_bucket(s3_export: S3Export) -> None:
    import polars as pl

    daily = (
        pl.scan_parquet(
            f"s3://{s3_export.prefix}/executions/",
            hive_partitioning=True,
            storage_options={
                "aws_access_key_id": KEY,
                "aws_secret_access_key": KEY,
                "aws_endpoint_url": s3_export.endpoint,
                "aws_region": "us-east-1",
                "aws_allow_http": "true",
            },
        )
        .group_by("date")
        .agg(
            runs=pl.len(),
            errors=(pl.col("status") == "error").sum(),
            total_ms=pl.col("execution_time").sum(),
        )
        .sort("date")
        .collect()
    )
    got = [(str(d), int(n), int(e), int(t)) for d, n, e, t in daily.rows()]
    assert got == per_day(s3_export.expected)


def test_chdb_reads_the_bucket(s3_export: S3Export) -> None:
    import chdb

    url = f"{s3_export.endpoint}/{s3_export.prefix}/executions/date=*/*.parquet"
    daily = chdb.query(
        f"SELECT toString(date) AS day, count() AS runs, countIf(status = 'error') AS errors,"
        f" sum(execution_time) AS total_ms FROM s3('{url}', '{KEY}', '{KEY}', 'Parquet')"
        " GROUP BY day ORDER BY day SETTINGS use_hive_partitioning = 1",
        "DataFrame",
    )
    got = [(str(d), int(n), int(e), int(t)) for d, n, e, t in daily.itertuples(index=False, name=None)]
    assert got == per_day(s3_export.expected)
