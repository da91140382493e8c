"""SELECTs whose values Python, JSON or pyarrow's writers cannot take as they come (dates past
Python's years, infinities, 128-bit integers, NaN, nested and odd types), with the JSON answer
`POST /api/v1/sql` gives for each (its one row); shared by the route, library and CLI tests."""

from __future__ import annotations

from typing import Any

import pytest

# created_at spans 2026-01-01 .. 2026-01-10 00:59 (tests/analytics/exports/conftest.py)
AWKWARD: list[tuple[str, list[Any]]] = [
    ("SELECT 'infinity'::DATE AS v", ["infinity"]),
    ("SELECT '-infinity'::DATE AS v", ["-infinity"]),
    ("SELECT '-infinity'::TIMESTAMPTZ AS v", ["-infinity"]),
    ("SELECT 'infinity'::TIMESTAMP AS v, 'infinity'::TIMESTAMP_S AS w", ["infinity", "infinity"]),
    ("SELECT DATE '10000-01-01' AS v", ["10000-01-01"]),
    ("SELECT '0000-01-01'::DATE AS v", ["0001-01-01 (BC)"]),
    ("SELECT TIMESTAMP '294247-01-01' AS v", ["294247-01-01 00:00:00"]),
    ("SELECT TIMESTAMPTZ '0000-06-01 10:00:00.25' AS v", ["0001-06-01 (BC) 10:00:00.25+00"]),
    (
        "SELECT max(created_at) + INTERVAL 100000 YEAR AS v FROM executions",
        ["102026-01-10 00:59:00+00"],
    ),
    (
        "SELECT 340282366920938463463374607431768211455::UHUGEINT AS v",
        ["340282366920938463463374607431768211455"],
    ),
    (
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS v, 99999999999999999999999999999999999999::DECIMAL(38,0) AS w",
        ["170141183460469231731687303715884105727", "99999999999999999999999999999999999999"],
    ),
    ("SELECT 123456789012345678901234567890::VARINT AS v", ["123456789012345678901234567890"]),
    (
        "SELECT INTERVAL 100000 YEAR AS v, '6a1c4a3e-0d4b-4c5f-9d6e-7f8091a2b3c4'::UUID AS w",
        [{"months": 1_200_000, "days": 0, "nanoseconds": 0}, "6a1c4a3e-0d4b-4c5f-9d6e-7f8091a2b3c4"],
    ),
    ("SELECT '\\xFF\\x00'::BLOB AS v", ["/wA="]),
    ("SELECT [[DATE '10000-01-01', NULL]] AS v", [[["10000-01-01", None]]]),
    ("SELECT {'a': 'infinity'::DATE, 'b': 'nan'::DOUBLE} AS v", [{"a": "infinity", "b": "NaN"}]),
    ("SELECT map(['k'], [DATE '10000-01-01']) AS v", [[["k", "10000-01-01"]]]),
    ("SELECT union_value(d := DATE '10000-01-01')::UNION(a INT, d DATE) AS v", ["10000-01-01"]),
    ("SELECT 'b'::ENUM('a', 'b') AS v, [1.5, 'inf'::DOUBLE]::DOUBLE[2] AS w", ["b", [1.5, "Infinity"]]),
    ("SELECT '0101'::BIT AS v", ["0101"]),
    ("SELECT '12:00:00+01'::TIMETZ AS v, TIME '24:00:00' AS w", ["12:00:00+01", "24:00:00"]),
    (
        "SELECT 'nan'::DOUBLE AS v, 'inf'::DOUBLE AS w, '-inf'::FLOAT AS x",
        ["NaN", "Infinity", "-Infinity"],
    ),
]
AWKWARD_PARAMS = [pytest.param(sql, row, id=sql[7:60]) for sql, row in AWKWARD]
AWKWARD_SQL = [pytest.param(sql, id=sql[7:60]) for sql, _ in AWKWARD]
