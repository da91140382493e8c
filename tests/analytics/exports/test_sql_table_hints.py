"""A misspelt table name: the hint names the export's tables, never DuckDB's own catalog.

DuckDB suggests the nearest name in its whole catalog, so `FROM nodes` used to answer
"Did you mean pg_indexes?": a table the user cannot mean and the export does not have. The
same query is checked through the library, the CLI (table and --output paths) and the API.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics.exports.sql_sandbox import SqlRefused, run_sql
from api.cli import app
from tests.analytics.exports.conftest import Exported
from tests.factories import headers

EXPORT_TABLES = "executions, execution_nodes, flows, annotations"
CATALOG = ("pg_", "duckdb_", "sqlite_", "information_schema")
# each of these made DuckDB 2.0 suggest one of its catalog tables
MISSPELT = ["nodes", "runs", "users", "penum", "tables", "main.nodes"]


def _library(root: Path, sql: str) -> str:
    with pytest.raises(SqlRefused) as info:
        run_sql(root, sql)
    return info.value.detail


def _cli(root: Path, sql: str, *extra: str) -> str:
    result = CliRunner().invoke(app, ["sql", sql, "--export", str(root), *extra], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    return " ".join(result.stderr.split())


def _api(exported: Exported, sql: str) -> str:
    r = exported.world.client.post("/api/v1/sql", json={"sql": sql}, headers=headers("admin"))
    assert r.status_code == 400, r.text
    return r.json()["detail"]


def _check(detail: str, name: str) -> None:
    assert f"{name.split('.')[-1]} does not exist" in detail, detail
    assert not any(word in detail for word in CATALOG), detail
    assert EXPORT_TABLES in " ".join(detail.split()), detail


@pytest.mark.parametrize("name", MISSPELT)
def test_library_and_api_hint_only_the_exports_tables(exported: Exported, name: str) -> None:
    sql = f"SELECT count(*) FROM {name}"
    _check(_library(exported.root, sql), name)
    _check(_api(exported, sql), name)


def test_cli_hints_only_the_exports_tables(exported: Exported, tmp_path: Path) -> None:
    _check(_cli(exported.root, "SELECT * FROM nodes"), "nodes")
    _check(_cli(exported.root, "SELECT * FROM nodes", "--output", str(tmp_path / "out.csv")), "nodes")
    assert list(tmp_path.iterdir()) == []


def test_a_hint_at_one_of_the_exports_tables_is_kept(exported: Exported) -> None:
    detail = _library(exported.root, "SELECT * FROM execution")
    assert 'Did you mean "executions"' in detail and EXPORT_TABLES in detail, detail
    detail = _library(exported.root, "SELECT * FROM executions e JOIN flowz f ON true")
    assert 'Did you mean "flows"' in detail, detail


def test_the_catalog_is_still_readable(exported: Exported) -> None:
    """The hint changes; what a query may read does not."""
    rows = run_sql(exported.root, "SELECT count(*) FROM pg_indexes").table.num_rows
    assert rows == 1
