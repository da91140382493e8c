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


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("no/such/folder/x.csv", "the folder {folder}/no/such/folder does not exist"),
        ("a-folder.csv", "{folder}/a-folder.csv is a folder"),
        ("/proc/x.csv", "/proc/.x.csv.partial: No such file or directory"),
    ],
)
def test_an_output_that_cannot_be_written_is_one_line(
    exported: Exported, tmp_path: Path, name: str, says: str
) -> None:
    if name.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    (tmp_path / "a-folder.csv").mkdir()
    code, out, err = _sql("SELECT 1", "--export", str(exported.root), "--output", str(tmp_path / name))
    assert code == 1 and out == ""
    assert says.format(folder=tmp_path) in _one_error_line(err)
    assert [p.name for p in tmp_path.iterdir()] == ["a-folder.csv"]


def test_an_existing_output_is_replaced_only_with_overwrite(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    target.write_text("kept\n")
    code, _, err = _sql("SELECT 1 AS n", "--export", str(exported.root), "--output", str(target))
    assert code == 1 and f"{target} exists; --overwrite replaces it" in _one_error_line(err)
    assert target.read_text() == "kept\n"
    code, _, err = _sql(
        "SELECT 1 AS n", "--export", str(exported.root), "--output", str(target), "--overwrite"
    )
    assert code == 0, err
    assert target.read_text().split() == ['"n"', "1"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--timeout", "inf"), ("--timeout", "1e308"), ("--timeout", "nan"), ("--limit", "99999999999999999999")],
)
def test_a_timeout_or_limit_past_any_sense_is_an_option_error(
    exported: Exported, option: str, value: str
) -> None:
    code, out, err = _sql("SELECT 1", "--export", str(exported.root), option, value)
    assert code == 2 and out == ""
    assert _one_error_line(err).startswith(f"error: Invalid value for '{option}'"), err


def test_names_and_values_are_printed_as_given(exported: Exported) -> None:
    code, out, err = _sql("""SELECT ':smile: [b]y' AS "[red]x[/red]" """, "--export", str(exported.root))
    assert code == 0, err
    assert "[red]x[/red]" in out and ":smile: [b]y" in out
