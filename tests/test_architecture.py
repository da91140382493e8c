"""The folder layout is the architecture: api/ is a thin HTTP adapter with no SQL and no DuckDB."""

import re
from pathlib import Path

API = Path(__file__).resolve().parents[1] / "api"
# statements, not the word: the SQL console's docs may say "one SELECT over the export"
SQL = re.compile(r"\b(SELECT\b[^\n]*\bFROM|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE TABLE)\b")


def test_api_has_no_duckdb_and_no_sql() -> None:
    offenders = []
    for path in API.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import duckdb|from duckdb)", text, re.M) or SQL.search(text):
            offenders.append(path.name)
    assert offenders == []
