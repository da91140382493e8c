"""The SQL sandbox on a real export: what it answers, and everything it must refuse.

Each refusal is checked for DuckDB's own reason (or the sandbox's, for statement types), and
for its effect: a refused COPY left no file, the export is unchanged.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from analytics.core.batch_formats import Format
from analytics.exports import sql_sandbox
from analytics.exports.sql_sandbox import Limits, SqlOutOfMemory, SqlRefused, SqlTimedOut, run_sql
from tests.analytics.exports.conftest import Exported


def test_views_hold_the_export(exported: Exported) -> None:
    r = run_sql(
        exported.root,
        "SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM execution_nodes),"
        " (SELECT count(*) FROM flows), (SELECT count(DISTINCT date) FROM executions)",
    )
    runs, nodes, flows, days = r.table.to_pylist()[0].values()
    store_nodes = exported.world.ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM execution_nodes").fetchall()[0][0]
    )
    assert runs == exported.runs
    assert nodes == store_nodes > 0
    assert flows == 3
    assert days == 10


def test_answer_columns_types_and_rows(exported: Exported) -> None:
    r = run_sql(
        exported.root,
        "SELECT status, count(*) AS n FROM executions GROUP BY status ORDER BY status",
    )
    assert [(c.name, c.type) for c in r.columns] == [("status", "VARCHAR"), ("n", "BIGINT")]
    assert r.table.to_pylist() == [{"status": "error", "n": 12}, {"status": "success", "n": 48}]
    assert r.row_count == 2 and not r.truncated


def test_row_limit_truncates_exactly(exported: Exported) -> None:
    r = run_sql(exported.root, "SELECT id FROM executions ORDER BY id", limit=7)
    assert r.row_count == 7 and r.truncated
    every = run_sql(exported.root, "SELECT id FROM executions ORDER BY id", limit=exported.runs)
    assert every.row_count == exported.runs and not every.truncated
    assert every.table.column("id").to_pylist()[:7] == r.table.column("id").to_pylist()


def test_each_query_gets_a_fresh_locked_connection(exported: Exported) -> None:
    r = run_sql(
        exported.root,
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access',"
        " 'lock_configuration', 'python_enable_replacements', 'autoload_known_extensions',"
        " 'autoinstall_known_extensions', 'allow_community_extensions', 'allowed_directories')",
        limits=Limits(memory_limit="300MB", threads=1),
    )
    values = dict(r.table.to_pylist()[i].values() for i in range(r.row_count))  # type: ignore[misc]
    assert values["enable_external_access"] == "false"
    assert values["lock_configuration"] == "true"
    assert values["python_enable_replacements"] == "false"
    assert values["autoload_known_extensions"] == "false"
    assert values["autoinstall_known_extensions"] == "false"
    assert values["allow_community_extensions"] == "false"
    assert os.path.realpath(exported.root) in values["allowed_directories"]


def _refused(root: Path, sql: str, **kw: object) -> str:
    with pytest.raises(SqlRefused) as info:
        run_sql(root, sql, **kw)  # type: ignore[arg-type]
    return info.value.detail


def test_reading_outside_the_export_is_refused(exported: Exported, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("secret\n42\n")
    store = exported.world.ctx.settings.db_path
    for sql in (
        f"SELECT * FROM read_csv('{outside}')",  # an absolute path
        f"SELECT * FROM '{outside}'",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_blob('{exported.root}/../{store.name}')",  # .. out of the export
        f"SELECT * FROM read_text('{exported.root}/executions/../../{store.name}')",
        "SELECT * FROM glob('/etc/*')",
    ):
        assert "Permission Error" in _refused(exported.root, sql), sql


def test_symlink_leaving_the_export_is_refused(exported: Exported, tmp_path: Path) -> None:
    copy = tmp_path / "exports"
    shutil.copytree(exported.root, copy, symlinks=True)  # its own links are relative: they stay inside
    assert run_sql(copy, "SELECT count(*) AS n FROM executions").table.to_pylist() == [{"n": exported.runs}]
    secret = tmp_path / "secret.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"s": ["secret"]}), secret)
    day = next((copy / "executions").glob("date=*"))
    (day.resolve() / "leak.parquet").symlink_to(secret)
    detail = _refused(copy, "SELECT count(*) FROM executions")
    assert "symlink leaving it" in detail and "leak.parquet" in detail


def test_a_symlink_that_cannot_be_followed_is_refused_not_a_crash() -> None:
    """`flowhistory sql --export /proc/1`: realpath of a link it may not read raised
    PermissionError, printed as a traceback."""
    detail = _refused(Path("/proc/1"), "SELECT 1 AS x")
    assert "cannot be followed" in detail or "symlink leaving it" in detail  # where PID 1's are readable


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COPY (SELECT 1 AS x) TO '{root}/executions/x.csv'", "COPY statement"),
        ("COPY executions TO '{root}/flows/flows.parquet'", "COPY statement"),
        ("COPY (SELECT 1) TO '/tmp/flowhistory-sandbox-x.csv'", "COPY statement"),
        ("EXPORT DATABASE '{root}/dump'", "EXPORT statement"),
        ("ATTACH '{root}/../store.duckdb' AS s", "ATTACH statement"),
        ("ATTACH ':memory:' AS m", "ATTACH statement"),
        ("INSTALL httpfs", "statement"),
        ("LOAD httpfs", "LOAD statement"),
        ("SET enable_external_access = true", "SET statement"),
        ("RESET memory_limit", "statement"),
        ("PRAGMA threads = 8", "SET statement"),
        ("PRAGMA version", "PRAGMA statement"),
        ("CALL pragma_version()", "CALL statement"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statement"),
        ("CREATE SECRET (TYPE s3)", "CREATE statement"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/y.csv'", "EXPLAIN statement"),
        ("SELECT 1; COPY (SELECT 1) TO '{root}/z.csv'", "exactly one statement"),
        ("SELEC 1", "Parser Error"),
    ],
)
def test_anything_but_one_select_is_refused(exported: Exported, sql: str, reason: str) -> None:
    before = sorted(str(p) for p in exported.root.rglob("*"))
    assert reason in _refused(exported.root, sql.format(root=exported.root))
    assert sorted(str(p) for p in exported.root.rglob("*")) == before  # nothing written
    assert not Path("/tmp/flowhistory-sandbox-x.csv").exists()


def test_settings_cannot_change_from_inside_a_select(exported: Exported) -> None:
    detail = _refused(exported.root, "SELECT * FROM query('SET enable_external_access = true')")
    assert "SELECT" in detail


def test_python_variables_are_not_tables(exported: Exported) -> None:
    leak = pa.table({"secret": [42]})  # a replacement scan would find this frame's local
    assert leak.num_rows == 1
    assert "leak does not exist" in _refused(exported.root, "SELECT * FROM leak")
    assert "does not exist" in _refused(exported.root, "SELECT * FROM 'leak'")


def test_runaway_query_is_stopped_and_the_next_runs(exported: Exported) -> None:
    with pytest.raises(SqlTimedOut) as info:
        run_sql(exported.root, "SELECT count(*) FROM range(1000000000000) a", timeout_s=0.3)
    assert "time limit of 0.3 s" in info.value.detail
    assert run_sql(exported.root, "SELECT 42 AS x").table.to_pylist() == [{"x": 42}]


def test_memory_limit_holds(exported: Exported) -> None:
    with pytest.raises(SqlOutOfMemory) as info:
        run_sql(
            exported.root,
            "SELECT list(range || 'padding-padding-padding') FROM range(20000000)",
            limits=Limits(memory_limit="64MB", threads=1),
            timeout_s=60,
        )
    assert "Out of Memory Error" in info.value.detail and "memory_limit 64MB" in info.value.detail


def test_missing_export_is_a_clear_refusal(tmp_path: Path) -> None:
    assert "no export" in _refused(tmp_path / "nothing", "SELECT 1")


LATE = [
    "SELECT CASE WHEN range = 5000 THEN error('late') ELSE range END AS v FROM range(10000)",
    "SELECT (CASE WHEN range = 3000 THEN 'x' ELSE range::VARCHAR END)::INT AS v FROM range(10000)",
]


@pytest.mark.parametrize("sql", LATE, ids=["error", "cast"])
def test_an_error_met_after_the_first_rows_is_refused_not_a_crash(
    exported: Exported, tmp_path: Path, sql: str
) -> None:
    """DuckDB's error after the first batch crosses Arrow's stream as an errno-less OSError: it
    was taken for the caller's own and came out as a 500 (and a traceback from the CLI)."""
    with pytest.raises(SqlRefused) as info:
        run_sql(exported.root, sql, limit=10000, timeout_s=60)
    assert "late" in info.value.detail or "Conversion Error" in info.value.detail
    with pytest.raises(SqlRefused):
        sql_sandbox.write_sql(exported.root, sql, tmp_path / "out.csv", Format.CSV, timeout_s=60)
    assert not (tmp_path / "out.csv").exists()
    assert run_sql(exported.root, "SELECT 42 AS x").table.to_pylist() == [{"x": 42}]  # the worker serves on


def test_a_time_limit_met_while_rows_stream_is_a_time_out(exported: Exported) -> None:
    """DuckDB's "INTERRUPT Error" after the first batch crossed Arrow's stream as an OSError and
    was a 500 ("the SQL worker failed") about half the time."""
    # ~0.1 s to plan and start, then seconds of md5 over 100,000 strings of ~15 KB
    sql = "SELECT r, md5(repeat(r::VARCHAR, 3000)) AS h FROM range(100000) t(r)"
    for _ in range(3):
        with pytest.raises(SqlTimedOut):
            run_sql(exported.root, sql, limit=100000, timeout_s=0.5)
