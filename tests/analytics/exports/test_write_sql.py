"""`sql_sandbox.write_sql`: every row of one SELECT into a file (what `flowhistory sql -o` calls),
checked against the export's own Parquet files read by pyarrow, not through the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from analytics.core.batch_formats import Format
from analytics.exports import sql_sandbox
from tests.analytics.exports.awkward_values import AWKWARD_PARAMS
from tests.analytics.exports.conftest import Exported


def _export_ids(exported: Exported) -> set[str]:
    files = sorted(str(p) for p in (exported.root / "executions").rglob("*.parquet"))
    return {
        str(i) for i in ds.dataset(files, format="parquet").to_table(columns=["id"]).column("id").to_pylist()
    }


@pytest.mark.parametrize("fmt", list(Format))
def test_writes_every_row(exported: Exported, tmp_path: Path, fmt: Format) -> None:
    target = tmp_path / f"out.{fmt.value}"
    written = sql_sandbox.write_sql(exported.root, "SELECT id FROM executions", target, fmt, timeout_s=60)
    if fmt is Format.PARQUET:
        ids = pq.read_table(target).column("id").to_pylist()
    elif fmt is Format.CSV:
        ids = pacsv.read_csv(target).column("id").to_pylist()
    else:
        ids = [json.loads(line)["id"] for line in target.read_text().splitlines()]
    expected = _export_ids(exported)
    assert len(expected) == exported.runs
    assert written == len(ids) == exported.runs and {str(i) for i in ids} == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no partial file left


def test_limit_caps_the_rows(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    assert sql_sandbox.write_sql(exported.root, "SELECT id FROM executions", target, Format.CSV, limit=7) == 7
    assert pacsv.read_csv(target).num_rows == 7


def test_a_refused_query_leaves_the_old_file_and_no_partial(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("before\n")
    with pytest.raises(sql_sandbox.SqlRefused):
        sql_sandbox.write_sql(exported.root, "SELECT nope FROM executions", target, Format.CSV)
    assert target.read_text() == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def _refuse(token: str) -> None:
    raise AssertionError(f"not JSON: {token}")


@pytest.mark.parametrize(("sql", "row"), AWKWARD_PARAMS)
def test_values_python_cannot_hold_are_written(
    exported: Exported, tmp_path: Path, sql: str, row: list[Any]
) -> None:
    """Every value of tests/analytics/exports/awkward_values.py in every format `flowhistory sql
    --output` writes: CSV as DuckDB's text, Parquet natively (intervals, unions, enums as text),
    JSON Lines as strict JSON (NaN and infinities as strings)."""
    for fmt in Format:
        target = tmp_path / f"out.{fmt.value}"
        assert sql_sandbox.write_sql(exported.root, sql, target, fmt, timeout_s=60) == 1, fmt
        if fmt is Format.PARQUET:
            assert pq.read_table(target).num_rows == 1
        elif fmt is Format.CSV:
            assert pacsv.read_csv(target).num_rows == 1
            text = target.read_text()
            assert "out of range" not in text
            for value in row:  # DuckDB's text, as in the JSON answer (but blobs, NaN: DuckDB's own)
                if (
                    isinstance(value, str)
                    and "BLOB" not in sql
                    and value not in ("NaN", "Infinity", "-Infinity")
                ):
                    assert value in text
        else:
            [line] = target.read_text().splitlines()
            assert isinstance(json.loads(line, parse_constant=_refuse), dict)


def test_csv_holds_duckdbs_text(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    sql = (
        "SELECT 'infinity'::DATE AS d, TIMESTAMP '294247-01-01' AS t, INTERVAL 1 DAY AS i,"
        " '\\xFF'::BLOB AS b, [1, 2] AS l, '0101'::BIT AS bits"
    )
    sql_sandbox.write_sql(exported.root, sql, target, Format.CSV, timeout_s=60)
    assert target.read_text().splitlines()[1] == (
        '"infinity","294247-01-01 00:00:00","1 day","\\xFF","[1, 2]","0101"'
    )
