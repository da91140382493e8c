"""`flowhistory sql` on a real export: no server, no store; a table, or every row to a file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.analytics.exports import conftest as _exports_fixtures
from tests.analytics.exports.awkward_values import AWKWARD_PARAMS
from tests.analytics.exports.conftest import Exported

# the fixtures of the folder this file came from (conftests are per folder)
exported = _exports_fixtures.exported

ENV = {"COLUMNS": "120", "NO_COLOR": "1"}


def _sql(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["sql", *args], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_prints_a_table(exported: Exported) -> None:
    code, out, err = _sql(
        "SELECT status, count(*) AS n FROM executions GROUP BY 1 ORDER BY 1", "--export", str(exported.root)
    )
    assert code == 0, err
    assert "status" in out and "BIGINT" in out
    assert "error" in out and "12" in out and "48" in out
    assert "2 rows" in err


def test_limit_is_reported(exported: Exported) -> None:
    code, _, err = _sql("SELECT id FROM executions", "--export", str(exported.root), "--limit", "5")
    assert code == 0, err
    assert "5 rows" in err and "truncated" in err


def test_writes_every_row(exported: Exported, tmp_path: Path) -> None:
    sql = "SELECT id, status, inputs, created_at FROM executions ORDER BY id"
    for name in ("out.csv", "out.parquet", "out.json"):
        target = tmp_path / name
        code, _, err = _sql(sql, "--export", str(exported.root), "--output", str(target))
        assert code == 0, err
        assert f"wrote {exported.runs} rows" in err
        if name.endswith(".csv"):
            ids = pacsv.read_csv(io.BytesIO(target.read_bytes())).column("id").to_pylist()
        elif name.endswith(".parquet"):
            ids = pq.read_table(target).column("id").to_pylist()
        else:
            lines = [json.loads(line) for line in target.read_text().splitlines()]
            assert json.loads(lines[0]["inputs"])["prompt"] == "hello"  # the export keeps JSON as text
            ids = [line["id"] for line in lines]
        assert len(ids) == len(set(ids)) == exported.runs


def test_refusal_exits_nonzero_and_writes_nothing(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    code, _, err = _sql(
        f"COPY executions TO '{tmp_path}/y.csv'", "--export", str(exported.root), "--output", str(target)
    )
    assert code == 1
    assert "COPY statement" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = _sql("SELECT 1", "--export", str(exported.root), "--output", str(tmp_path / "x.txt"))
    assert code != 0 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sql", "row"), AWKWARD_PARAMS)
def test_prints_values_python_cannot_hold(exported: Exported, sql: str, row: list[object]) -> None:
    code, out, err = _sql(sql, "--export", str(exported.root))
    assert code == 0, err
    assert "1 rows" in err
    for value in row:
        if isinstance(value, str) and "BLOB" not in sql:  # base64 is the JSON answer's, not the table's
            assert value in out
