"""Streaming downloads: the same rows as search, in three formats, a batch at a time."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta

import orjson
import pyarrow.parquet as pq
import pytest

from analytics.access.permissions import Viewer
from analytics.core.batch_formats import Format
from analytics.history.download import download_executions
from analytics.history.filters import ExecutionFilter
from analytics.history.search import ExecutionSort
from tests.analytics.exports.conftest import Exported
from tests.factories import headers

ERRORS = json.dumps({"status": {"any_": ["error"]}})


def _count(exported: Exported, user: str, flt: dict[str, object]) -> int:
    r = exported.world.client.post("/api/v1/executions/count", json={"filter": flt}, headers=headers(user))
    assert r.status_code == 200, r.text
    return r.json()["count"]


def _csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


@pytest.mark.parametrize("user", ["admin", "owner", "reader", "grouped", "stranger"])
def test_csv_holds_what_search_counts(exported: Exported, user: str) -> None:
    r = exported.world.client.get("/api/v1/executions/download?format=csv", headers=headers(user))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="executions-')
    rows = _csv_rows(r.content)
    assert len(rows) == _count(exported, user, {})
    if user in ("reader", "grouped", "stranger"):  # read-only callers see only their own runs
        assert {row["user_id"] for row in rows} <= {user}


def test_filter_and_sort_as_in_search(exported: Exported) -> None:
    r = exported.world.client.get(
        "/api/v1/executions/download",
        params={"format": "csv", "filter": ERRORS, "sort": "execution_time"},
        headers=headers("admin"),
    )
    rows = _csv_rows(r.content)
    assert len(rows) == _count(exported, "admin", {"status": {"any_": ["error"]}}) == 12
    assert {row["status"] for row in rows} == {"error"}
    times = [int(row["execution_time"]) for row in rows]
    assert times == sorted(times)
    assert rows[0]["created_at"].endswith("Z")  # UTC
    assert json.loads(rows[0]["nodes"])  # per-node facts as JSON text in CSV


def test_jsonl_nests_payloads(exported: Exported) -> None:
    w = exported.world
    r = w.client.get(
        f"/api/v1/flows/{w.shared}/executions/download",
        params={"format": "jsonl", "filter": ERRORS},
        headers=headers("owner"),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [orjson.loads(line) for line in r.content.splitlines()]
    assert len(lines) == _count(
        exported, "owner", {"flow_id": {"any_": [w.shared]}, "status": {"any_": ["error"]}}
    )
    assert {x["flow_id"] for x in lines} == {w.shared}
    assert lines[0]["errors"] == {"message": "boom"}  # JSON, not a string holding JSON
    assert lines[0]["inputs"]["prompt"] == "hello"
    assert isinstance(lines[0]["nodes"], list)
    # a time as the API writes it (RFC 3339, Z), not DuckDB's "2026-12-08 00:00:00+00"
    for x in lines:
        run = w.client.get(f"/api/v1/flows/{w.shared}/executions/{x['id']}", headers=headers("owner")).json()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", x["created_at"]), x["created_at"]
        at = datetime.fromisoformat(x["created_at"])
        assert at.utcoffset() == timedelta(0) and int(at.timestamp()) == run["created_at"]


def test_parquet_one_flow(exported: Exported) -> None:
    w = exported.world
    r = w.client.get(
        f"/api/v1/flows/{w.public}/executions/download?format=parquet", headers=headers("reader")
    )
    assert r.status_code == 200, r.text
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == _count(exported, "reader", {"flow_id": {"any_": [w.public]}}) > 0
    assert set(table.column("user_id").to_pylist()) == {"reader"}
    assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"


@pytest.mark.parametrize(
    ("path", "user", "status"),
    [
        ("/api/v1/flows/{private}/executions/download", "reader", 403),
        ("/api/v1/flows/nope/executions/download", "admin", 404),
        ("/api/v1/executions/download", "anonymous", 401),
        ("/api/v1/executions/download?format=xml", "admin", 422),
        ("/api/v1/executions/download?sort=name", "admin", 422),
        ('/api/v1/executions/download?filter={"stauts": {"any_": ["error"]}}', "admin", 422),
        ("/api/v1/executions/download?filter=not-json", "admin", 422),
    ],
)
def test_refusals_before_any_byte(exported: Exported, path: str, user: str, status: int) -> None:
    r = exported.world.client.get(path.replace("{private}", exported.world.private), headers=headers(user))
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    if "stauts" in path:
        assert "stauts" in r.text


@pytest.mark.parametrize("sort", [ExecutionSort.NEWEST, ExecutionSort.SLOWEST])
@pytest.mark.parametrize("fmt", list(Format))
def test_streams_batch_by_batch(exported: Exported, fmt: Format, sort: ExecutionSort) -> None:
    """Batches of 7 rows: the file arrives in many chunks and still holds every row once, in order."""
    ctx = exported.world.ctx
    d = download_executions(
        ctx, Viewer("admin", "admin"), fmt, filter=ExecutionFilter(), sort=sort, batch_rows=7
    )
    chunks = list(d.chunks)
    assert len(chunks) >= exported.runs // 7
    data = b"".join(chunks)
    if fmt is Format.CSV:
        ids = [row["id"] for row in _csv_rows(data)]
    elif fmt is Format.JSONL:
        ids = [orjson.loads(line)["id"] for line in data.splitlines()]
    else:
        parquet = pq.ParquetFile(io.BytesIO(data))
        assert parquet.metadata.num_row_groups >= exported.runs // 7
        ids = parquet.read().column("id").to_pylist()
    assert len(ids) == len(set(ids)) == exported.runs
    page = exported.world.client.post(
        "/api/v1/executions/search", json={"sort": sort.value, "limit": 500}, headers=headers("admin")
    ).json()
    assert ids == [item["id"] for item in page["items"]]  # search's order, ties broken by id
