"""One export read by DuckDB, polars, pandas/pyarrow, chdb and Spark: the same daily trend,
the same numbers as the store, and partition pruning shown.

The engines' code is the documentation's: each `# engine: NAME` snippet of
docs/sql-and-engines.md is run as written, so the doc cannot drift from what works.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import Export, Row

pytestmark = pytest.mark.engines

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql-and-engines.md"
SNIPPET = re.compile(r"```python\n# engine: (\w+)\n(.*?)```", re.S)
SNIPPETS = dict(SNIPPET.findall(DOC.read_text()))
ENGINES = ["duckdb", "polars", "pandas", "chdb", "spark"]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    shutil.which("java") or pytest.fail("Spark needs Java 17 on the PATH")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("flowhistory-engines")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def run_snippet(engine: str, export: Path, request: pytest.FixtureRequest) -> list[Row]:
    scope: dict[str, Any] = {"EXPORT": str(export)}
    if engine == "spark":
        scope["spark"] = request.getfixturevalue("spark")
    exec(compile(SNIPPETS[engine], f"{DOC.name}:{engine}", "exec"), scope)
    return [
        (str(day), int(runs), int(errors), int(total), int(lo), int(hi), float(p50))
        for day, runs, errors, total, lo, hi, p50 in scope["rows"]
    ]


def test_every_engine_has_a_documented_snippet() -> None:
    assert sorted(SNIPPETS) == sorted(ENGINES)


@pytest.mark.parametrize("engine", ENGINES)
def test_daily_trend_matches_the_store(export: Export, engine: str, request: pytest.FixtureRequest) -> None:
    assert len(export.expected) == 60 and sum(r[1] for r in export.expected) == 3000
    assert run_snippet(engine, export.root, request) == export.expected


@pytest.fixture(scope="module")
def early_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """Runs on days before 1970 (the README: they are stored and exported like any other)."""
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from analytics.exports import run_export
    from analytics.flows import registry as flows
    from analytics.history import ingest
    from tests.engines.conftest import TREND_SQL
    from tests.factories import ADMIN, SECRET, make_execution

    folder = tmp_path_factory.mktemp("early")
    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key=SECRET, scheduler_enabled=False)
    with open_context(settings) as ctx:
        flow = flows.create_flow(ctx, ADMIN, name="early", nodes=[], edges=[], access_control=None).id
        times = [-2_203_934_400, -3_600, -1, 0, 3_600, 90_000]  # 1900-02-28 12:00 ... 1970-01-02
        runs = [
            make_execution(
                flow, status=("success", "error")[i % 2], execution_time=10 * (i + 1), created_at=t
            )
            for i, t in enumerate(times)
        ]
        assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, runs))
        run_export(ctx)
        expected = [tuple(r) for r in ctx.store.read(lambda c: c.execute(TREND_SQL).fetchall())]
    return Export(settings.data_dir / "exports", expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
def test_days_before_1970_keep_apart(
    early_export: Export, engine: str, request: pytest.FixtureRequest
) -> None:
    """chdb read the hive `date` as a Date, which starts in 1970: every earlier day was 1970-01-01."""
    assert [r[0] for r in early_export.expected] == ["1900-02-28", "1969-12-31", "1970-01-01", "1970-01-02"]
    assert run_snippet(engine, early_export.root, request) == early_export.expected


# -- partition pruning ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt_export(export: Export, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A copy of the export with a file of garbage in one day's partition: a query filtered to
    another day must not open it (and an unfiltered one must fail on it, or the test proves nothing)."""
    root = tmp_path_factory.mktemp("corrupt") / "exports"
    shutil.copytree(export.root, root, symlinks=True)  # the partition links are relative: still inside
    bad_day, good_day = export.expected[10][0], export.expected[40][0]
    (root / "executions" / f"date={bad_day}").resolve().joinpath("corrupt.parquet").write_bytes(
        b"PAR1 this is not parquet " * 50
    )
    return root, bad_day, good_day


def _count_queries(engine: str, root: Path, day: str | None, spark: Any = None) -> int:
    glob = f"{root}/executions/date=*/*.parquet"
    if engine == "duckdb":
        import duckdb

        where = f"WHERE date = DATE '{day}'" if day else ""
        sql = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true) {where}"
        return duckdb.connect().sql(sql).fetchall()[0][0]
    if engine == "polars":
        import polars as pl

        lf = pl.scan_parquet(f"{root}/executions/", hive_partitioning=True)
        if day:
            lf = lf.filter(pl.col("date") == pl.lit(day).str.to_date())
        return lf.select(pl.len()).collect().item()
    if engine == "pyarrow":
        import pyarrow.dataset as ds

        dataset = ds.dataset(f"{root}/executions", format="parquet", partitioning="hive")
        return dataset.count_rows(filter=ds.field("date") == day if day else None)
    if engine == "chdb":
        import chdb

        where = f"WHERE date = '{day}'" if day else ""
        sql = f"SELECT count() FROM file('{glob}', Parquet) {where} SETTINGS use_hive_partitioning = 1"
        return int(chdb.query(sql, "CSV").bytes().decode().strip())
    assert engine == "spark"
    df = spark.read.parquet(f"{root}/executions")
    return (df.where(df.date == day) if day else df).count()


@pytest.mark.parametrize("engine", ["duckdb", "polars", "pyarrow", "chdb", "spark"])
def test_a_date_filter_never_opens_other_partitions(
    export: Export, corrupt_export: tuple[Path, str, str], engine: str, request: pytest.FixtureRequest
) -> None:
    root, bad_day, good_day = corrupt_export
    session = request.getfixturevalue("spark") if engine == "spark" else None
    expected = {r[0]: r[1] for r in export.expected}
    assert _count_queries(engine, root, good_day, session) == expected[good_day]
    # each engine has its own error for a bad file; that it fails at all is the point
    for day in (bad_day, None):
        with pytest.raises(Exception):  # noqa: B017
            _count_queries(engine, root, day, session)


def test_spark_plan_shows_partition_filters(export: Export, spark: Any) -> None:
    day = export.expected[5][0]
    spark.read.parquet(f"{export.root}/executions").createOrReplaceTempView("pruned")
    query = spark.sql(f"SELECT count(*) AS n FROM pruned WHERE date = DATE '{day}'")
    plan = query._jdf.queryExecution().executedPlan().toString()
    assert re.search(rf"PartitionFilters: \[.*\(date#\d+ = {day}\)", plan), plan
    assert query.collect()[0]["n"] == dict((r[0], r[1]) for r in export.expected)[day]


# -- the usual globs: `**` as DuckDB's docs teach it, and each engine's documented form -----------

# per UTC day: runs and total execution_time, read with each engine's recursive listing (`**` where
# the engine globs) and with the pattern the docs give; both must list every file exactly once
GLOBS = {
    ("duckdb", "**"): "duckdb_glob:{root}/executions/**/*.parquet",
    ("duckdb", "documented"): "duckdb_glob:{root}/executions/date=*/*.parquet",
    ("polars", "**"): "polars:{root}/executions/**/*.parquet",
    ("polars", "documented"): "polars:{root}/executions/",
    ("pyarrow", "documented"): "pyarrow:{root}/executions",
    ("pandas", "directory"): "pandas:{root}/executions",
    ("chdb", "**"): "chdb:{root}/executions/**/*.parquet",
    ("chdb", "documented"): "chdb:{root}/executions/date=*/*.parquet",
    ("spark", "**"): "spark_glob:{root}/executions/**/*.parquet",
    ("spark", "documented"): "spark:{root}/executions",
}


def per_day(how: str, root: Path, spark: Any = None) -> list[tuple[str, int, int]]:
    kind, _, path = how.format(root=root).partition(":")
    if kind == "duckdb_glob":
        import duckdb

        sql = (
            "SELECT strftime(date, '%Y-%m-%d'), count(*), sum(execution_time)::BIGINT"
            f" FROM read_parquet('{path}', hive_partitioning = true) GROUP BY 1 ORDER BY 1"
        )
        return duckdb.connect().sql(sql).fetchall()
    if kind == "polars":
        import polars as pl

        lf = pl.scan_parquet(path, hive_partitioning=True)
        daily = lf.group_by("date").agg(pl.len(), pl.col("execution_time").sum()).sort("date").collect()
        return [(str(d), n, t) for d, n, t in daily.rows()]
    if kind in ("pyarrow", "pandas"):
        import pandas as pd
        import pyarrow.dataset as ds

        if kind == "pyarrow":
            df = ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()
        else:
            df = pd.read_parquet(path, columns=["date", "execution_time"])
        daily = df.groupby(df["date"].astype(str))["execution_time"].agg(["size", "sum"]).sort_index()
        return [(d, int(n), int(t)) for d, n, t in daily.itertuples(name=None)]
    if kind == "chdb":
        import chdb

        sql = (
            "SELECT toString(date), count(), sum(execution_time)"
            f" FROM file('{path}', Parquet) GROUP BY 1 ORDER BY 1 SETTINGS use_hive_partitioning = 1"
        )
        return list(chdb.query(sql, "DataFrame").itertuples(index=False, name=None))
    # Spark's globs know no base: `basePath` tells it where the `date=` folders start
    reader = spark.read.option("basePath", f"{root}/executions") if kind == "spark_glob" else spark.read
    df = reader.parquet(path)
    rows = df.groupBy("date").agg({"*": "count", "execution_time": "sum"}).orderBy("date").collect()
    return [(str(r[0]), int(r["count(1)"]), int(r["sum(execution_time)"])) for r in rows]


@pytest.mark.parametrize(("engine", "pattern"), list(GLOBS))
def test_usual_globs_list_every_file_once(
    export: Export, engine: str, pattern: str, request: pytest.FixtureRequest
) -> None:
    session = request.getfixturevalue("spark") if engine == "spark" else None
    expected = [(day, runs, total) for day, runs, _, total, *_ in export.expected]
    assert per_day(GLOBS[engine, pattern], export.root, session) == expected


def test_partitions_are_real_folders(export: Export) -> None:
    """What makes `**` work everywhere: no symlink in the tree readers list."""
    for table in ("executions", "execution_nodes"):
        parts = list((export.root / table).iterdir())
        assert len(parts) == 60
        for part in parts:
            assert part.is_dir() and not part.is_symlink(), part
            assert all(f.is_file() and not f.is_symlink() for f in part.iterdir())
