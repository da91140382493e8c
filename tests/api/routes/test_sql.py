"""POST /api/v1/sql over HTTP: admins only, JSON and Arrow answers, refusals as 400s, limits as 422/413."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from analytics.exports import sql_sandbox
from analytics.exports.sql_sandbox import Limits
from tests.analytics.exports import conftest as _exports_fixtures
from tests.analytics.exports.awkward_values import AWKWARD_PARAMS
from tests.analytics.exports.conftest import Exported
from tests.factories import headers

# the fixtures of the folder this file came from (conftests are per folder)
exported = _exports_fixtures.exported

ARROW = "application/vnd.apache.arrow.stream"
TREND = "SELECT date, count(*) AS runs FROM executions GROUP BY date ORDER BY date"


@pytest.mark.parametrize(("user", "status"), [("anonymous", 401), ("owner", 403), ("reader", 403)])
def test_only_admins(exported: Exported, user: str, status: int) -> None:
    r = exported.world.client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers=headers(user))
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_json_answer(exported: Exported) -> None:
    r = exported.world.client.post("/api/v1/sql", json={"sql": TREND, "limit": 4}, headers=headers("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == [{"name": "date", "type": "DATE"}, {"name": "runs", "type": "BIGINT"}]
    assert body["rows"] == [["2026-01-01", 6], ["2026-01-02", 6], ["2026-01-03", 6], ["2026-01-04", 6]]
    assert body["row_count"] == 4 and body["truncated"] is True
    assert body["elapsed_ms"] >= 0


def test_awkward_types_and_repeated_names_are_json(exported: Exported) -> None:
    sql = (
        "SELECT 1.25::DECIMAL(5,2) AS a, 1 AS a, 'ab'::BLOB AS b, INTERVAL 90 SECOND AS i,"
        " [1, 2] AS l, {'k': 'v'} AS s, (SELECT created_at FROM executions LIMIT 1) IS NOT NULL AS t"
    )
    r = exported.world.client.post("/api/v1/sql", json={"sql": sql}, headers=headers("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [
        ["1.25", 1, "YWI=", {"months": 0, "days": 0, "nanoseconds": 90 * 10**9}, [1, 2], {"k": "v"}, True]
    ]


@pytest.mark.parametrize("how", ["format", "accept"])
def test_arrow_answer(exported: Exported, how: str) -> None:
    body: dict[str, object] = {"sql": TREND, "limit": 1000}
    extra = {"Accept": ARROW}
    if how == "format":
        body["format"] = "arrow"
        extra = {}
    r = exported.world.client.post("/api/v1/sql", json=body, headers={**headers("admin"), **extra})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.column_names == ["date", "runs"]
    assert sum(table.column("runs").to_pylist()) == exported.runs
    assert r.headers["x-row-count"] == "10" and r.headers["x-truncated"] == "false"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM read_text('/etc/passwd')", "Permission Error"),
        ("COPY executions TO '{root}/executions/copy.parquet'", "COPY statement"),
        ("ATTACH '{root}/../store.duckdb' AS s", "ATTACH statement"),
        ("INSTALL httpfs", "statement"),
        ("SET threads = 4", "SET statement"),
        ("SELECT * FROM nowhere", "nowhere does not exist"),
    ],
)
def test_refusals_are_400_and_the_server_keeps_serving(exported: Exported, sql: str, reason: str) -> None:
    client = exported.world.client
    r = client.post("/api/v1/sql", json={"sql": sql.format(root=exported.root)}, headers=headers("admin"))
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]
    again = client.post(
        "/api/v1/sql", json={"sql": "SELECT count(*) FROM executions"}, headers=headers("admin")
    )
    assert again.json()["rows"] == [[exported.runs]]


def test_runaway_query_is_a_422(exported: Exported) -> None:
    r = exported.world.client.post(
        "/api/v1/sql",
        json={"sql": "SELECT count(*) FROM range(1000000000000) a", "timeout_s": 0.3},
        headers=headers("admin"),
    )
    assert r.status_code == 422 and "time limit of 0.3 s" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"sql": "SELECT 1", "limit": 100_001},
        {"sql": "SELECT 1", "timeout_s": 61},
        {"sql": "SELECT 1", "limit": 0},
        {"sql": ""},
        {"sql": "SELECT 1", "format": "xml"},
        {"sql": "SELECT 1", "unknown": 1},
    ],
)
def test_bad_requests_are_422(exported: Exported, body: dict[str, object]) -> None:
    r = exported.world.client.post("/api/v1/sql", json=body, headers=headers("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def _strict_json(text: bytes) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("sql", "row"), AWKWARD_PARAMS)
def test_values_python_cannot_hold_are_answered_in_json_and_arrow(
    exported: Exported, sql: str, row: list[Any]
) -> None:
    """Dates past year 9999 or before year 1, infinities, 128-bit integers, NaN, nested and odd
    types: a 200 in both formats (these were 500s, or wrong values), as DuckDB writes them."""
    client = exported.world.client
    r = client.post("/api/v1/sql", json={"sql": sql, "limit": 5}, headers=headers("admin"))
    assert r.status_code == 200, r.text
    assert _strict_json(r.content)["rows"] == [row]
    a = client.post("/api/v1/sql", json={"sql": sql, "format": "arrow"}, headers=headers("admin"))
    assert a.status_code == 200, a.text
    assert pa.ipc.open_stream(a.content).read_all().num_rows == 1


def test_out_of_memory_while_building_the_arrow_answer_is_a_413(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a 512 MiB worker DuckDB's Arrow conversion fails as OSError("Out of Memory Error:
    ArrowBuffer ..."): the documented 413 (it was a 500), and the next query runs."""
    small = Limits(worker_memory=512 * 1024**2, workers=1, answer_bytes=2**40)
    monkeypatch.setattr(sql_sandbox, "limits_from", lambda settings: small)
    client = exported.world.client
    body = {"sql": "SELECT repeat('x', 5000) AS s FROM range(100000)", "limit": 100_000, "timeout_s": 60}
    r = client.post("/api/v1/sql", json=body, headers=headers("admin"))
    assert r.status_code == 413, r.text
    assert "needed more memory" in r.json()["detail"]
    again = client.post(
        "/api/v1/sql", json={"sql": "SELECT count(*) FROM executions"}, headers=headers("admin")
    )
    assert again.status_code == 200 and again.json()["rows"] == [[exported.runs]]


def test_an_answer_past_the_size_the_server_takes_back_is_a_413(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`limit` caps rows, not bytes: 80 rows of 5 MB came back whole, and the server held them
    about three times over (+1.2 GB) while they became JSON. Now the worker stops at the cap
    (FLOWHISTORY_SQL_MAX_ANSWER_BYTES), and is kept: its heap is fine."""
    settings = exported.world.ctx.settings.model_copy(
        update={"sql_max_answer_bytes": 1024**2, "sql_workers": 1}
    )
    capped = sql_sandbox.limits_from(settings)
    assert capped.answer_bytes == 1024**2
    monkeypatch.setattr(sql_sandbox, "limits_from", lambda _: capped)
    client = exported.world.client
    body = {"sql": "SELECT repeat('x', 100000) AS s FROM range(100)", "limit": 100}
    r = client.post("/api/v1/sql", json=body, headers=headers("admin"))
    assert r.status_code == 413, r.text
    assert "1 MB (FLOWHISTORY_SQL_MAX_ANSWER_BYTES)" in r.json()["detail"]
    [worker] = sql_sandbox._pool(capped).pids()
    small = {"sql": "SELECT repeat('x', 100000) AS s FROM range(10)", "limit": 100}
    ok = client.post("/api/v1/sql", json=small, headers=headers("admin"))  # 1,000,000 bytes: under
    assert ok.status_code == 200 and len(ok.json()["rows"]) == 10
    assert sql_sandbox._pool(capped).pids() == [worker]
