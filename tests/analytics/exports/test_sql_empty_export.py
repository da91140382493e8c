"""An export holding no runs yet: the sandbox's views exist, with the export's schema, and
answer zero rows (instead of DuckDB's 'Table with name executions does not exist')."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.exports import run_export
from analytics.exports.sql_sandbox import run_sql
from tests.analytics.exports.conftest import Exported

TABLES = ("executions", "execution_nodes", "flows", "annotations")


def describe(root: Path, table: str) -> list[tuple[str, str]]:
    rows = run_sql(root, f"DESCRIBE {table}").table.to_pylist()
    return [(r["column_name"], r["column_type"]) for r in rows]


def duckdb_type(declared: str) -> str:
    """A declared type as DuckDB spells it back (it quotes field names such as "cost")."""
    return str(duckdb.sql(f"SELECT CAST(NULL AS {declared}) AS x").dtypes[0])


def counts(root: Path) -> list[int]:
    sql = ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
    return list(run_sql(root, f"SELECT {sql}").table.to_pylist()[0].values())


@pytest.fixture(scope="module")
def empty_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the first cycle over an empty store leaves: `_schema.json`, `flows/`, no partition."""
    folder = tmp_path_factory.mktemp("empty")
    settings = Settings(db_path=folder / "store.duckdb", scheduler_enabled=False)
    with open_context(settings) as ctx:
        run_export(ctx)
    root = settings.data_dir / "exports"
    assert not (root / "executions").exists() or not any((root / "executions").iterdir())
    return root


def test_an_empty_export_answers_zero_rows(empty_export: Path) -> None:
    assert counts(empty_export) == [0, 0, 0, 0]
    r = run_sql(empty_export, "SELECT status, count(*) AS n FROM executions GROUP BY status")
    assert r.row_count == 0 and [c.name for c in r.columns] == ["status", "n"]


def test_empty_views_have_the_columns_and_types_of_the_real_ones(
    empty_export: Path, exported: Exported
) -> None:
    declared = json.loads((exported.root / "_schema.json").read_text())["tables"]
    for table in TABLES:
        real = describe(exported.root, table)
        assert describe(empty_export, table) == real, table
        # and both are the export's declared schema, plus the hive `date` of partitioned tables
        columns = [(c["name"], duckdb_type(c["type"])) for c in declared[table]["columns"]]
        partitioned = table in ("executions", "execution_nodes")
        assert real == ([*columns, ("date", "DATE")] if partitioned else columns), table


def test_a_not_yet_written_export_answers_zero_rows(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    (root / "_staging").mkdir(parents=True)  # the first cycle has started, nothing is published
    assert counts(root) == [0, 0, 0, 0]


def test_a_table_without_files_is_empty_while_the_others_are_read(exported: Exported, tmp_path: Path) -> None:
    copy = tmp_path / "exports"
    shutil.copytree(exported.root, copy, symlinks=True)
    shutil.rmtree(copy / "execution_nodes")
    (copy / "flows" / "flows.parquet").unlink()
    assert counts(copy) == [exported.runs, 0, 0, 0]
