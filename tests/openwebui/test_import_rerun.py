"""`import openwebui` against what the adversarial report found: an id that is not UTF-8, runs
saved in Open WebUI after an import with keys at or before its last one, and values the import
changed without a report line (a meta that had `openwebui_import` already, a created_at with a
fraction, a payload that is empty text, an integer past 64 bits)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from analytics.core.context import Context
from analytics.openwebui import importer
from tests.openwebui.webui_db import WebUIDb

T0 = 1_750_000_000
NODES = [{"id": "model_1", "type": "model"}]


def _source(db: WebUIDb) -> str:
    db.add_user("alice", "admin")
    return db.add_flow("alice", nodes=NODES, created_at=T0 - 100)


def _ids(ctx: Context) -> list[str]:
    rows = ctx.store.read(lambda c: c.execute("SELECT id::VARCHAR FROM executions").fetchall())
    return sorted(r[0] for r in rows)


def _report(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _row(ctx: Context, eid: str) -> dict[str, Any]:
    rows = ctx.store.read(
        lambda c: (
            c.sql(
                "SELECT epoch(created_at) AS at, inputs::VARCHAR AS inputs, errors::VARCHAR AS errors,"
                f" meta::VARCHAR AS meta FROM executions WHERE id = '{eid}'"
            )
            .to_arrow_table()
            .to_pylist()
        )
    )
    assert len(rows) == 1, eid
    return dict(rows[0])


@pytest.mark.parametrize("kind", ["blob", "text"])
def test_an_id_that_is_not_utf8_is_skipped_and_the_rest_of_its_chunk_stored(
    tmp_path: Path, ctx: Context, kind: str
) -> None:
    """It aborted the import for good (a UnicodeDecodeError at every rerun): no run of its
    chunk, nor any after it, could be imported, and no report was written."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        before = db.add_execution(fid, "alice", created_at=T0 - 10)
        bad = db.add_execution(fid, "alice", created_at=T0)
        value = "X'FF00FE'" if kind == "blob" else "CAST(X'FF61' AS TEXT)"
        db.execute(f"UPDATE flow_execution SET id = {value} WHERE id = ?", (bad,))
        after = db.add_execution(fid, "alice", created_at=T0 + 10)
        db.add_user("mallory", "user")  # a name that is not UTF-8 either: imported, reported
        db.execute("""UPDATE "user" SET name = CAST(X'6D61FF' AS TEXT) WHERE id = 'mallory'""")
        report = tmp_path / "r.jsonl"
        summary = importer.import_openwebui(ctx, db.url, report=report, chunk_rows=100)
        label = "x'ff00fe'" if kind == "blob" else "x'ff61'"
        assert _ids(ctx) == sorted([before, after])
        assert (summary.runs_read, summary.runs_stored, summary.runs_skipped) == (3, 2, 1)
        assert (summary.total_read, summary.total_in_source, summary.total_stored) == (3, 3, 2)
        lines = _report(report)
        assert {
            "id": label,
            "action": "skipped",
            "reason": f"id {label} is not UTF-8 text (not a UUID)",
        } in lines
        assert any(x["id"] == "mallory" and "name is not UTF-8" in x["reason"] for x in lines), lines
        # a rerun reads nothing again and reports the same
        again = importer.import_openwebui(ctx, db.url, report=report)
        assert (again.runs_read, again.runs_stored, again.runs_skipped) == (0, 0, 0)
        assert again.finished and _report(report) == lines and _ids(ctx) == sorted([before, after])
    finally:
        db.close()


def test_a_rerun_imports_runs_saved_at_or_before_the_last_key(webui_db: WebUIDb, ctx: Context) -> None:
    """Open WebUI keeps serving during the migration: a run it saves in the second of the last
    imported one with a smaller id, or with an older created_at (a clock stepped back, a row
    committed late), was never imported by a rerun, nor reported. Each rerun reads exactly the
    rows no import read before, once."""
    fid = _source(webui_db)
    at = int(time.time()) - 600
    first = [
        webui_db.add_execution(
            fid, "alice", execution_id=f"8{i:07d}-0000-4000-8000-000000000000", created_at=at
        )
        for i in range(3)
    ]
    summary = importer.import_openwebui(ctx, webui_db.url, chunk_rows=2)
    assert (summary.runs_read, summary.runs_stored) == (3, 3)
    late = [
        webui_db.add_execution(
            fid, "alice", execution_id="10000000-0000-4000-8000-000000000000", created_at=at
        ),
        webui_db.add_execution(fid, "alice", created_at=at - 5),
        webui_db.add_execution(fid, "alice", created_at=at + 5),
    ]
    again = importer.import_openwebui(ctx, webui_db.url, chunk_rows=2)
    assert (again.runs_read, again.runs_stored, again.runs_already_there, again.runs_skipped) == (3, 3, 0, 0)
    assert (again.total_read, again.total_stored, again.total_in_source) == (6, 6, 6)
    assert _ids(ctx) == sorted(first + late)
    # a run deleted here since (retention, by hand) is not brought back: it was read once
    ctx.store.write(lambda c: c.execute("DELETE FROM executions WHERE id = ?", [late[1]]))
    third = importer.import_openwebui(ctx, webui_db.url)
    assert (third.runs_read, third.runs_stored) == (0, 0)
    assert _ids(ctx) == sorted([*first, late[0], late[2]])
    # nor by the same source written another way (the ledger was kept per URL's text)
    head, _, name = webui_db.url.rpartition("/")
    other = f"{webui_db.url}?application_name=again" if webui_db.postgres else f"{head}//{name}"
    fourth = importer.import_openwebui(ctx, other)
    assert (fourth.runs_read, fourth.runs_stored) == (0, 0)
    assert _ids(ctx) == sorted([*first, late[0], late[2]])


def test_a_meta_that_has_openwebui_import_already_keeps_it(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """The import's note on a run (an odd status's original) replaced the source's own
    `meta.openwebui_import`, without a word."""
    fid = _source(webui_db)
    own = {"status": "keep-me", "n": [1, None]}
    eid = webui_db.add_execution(
        fid, "alice", status="running", created_at=T0, meta={"openwebui_import": own, "k": 1}
    )
    plain = webui_db.add_execution(fid, "alice", created_at=T0, meta={"openwebui_import": own})
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert json.loads(_row(ctx, eid)["meta"]) == {
        "k": 1,
        "openwebui_import": {"status": "running", "source_value": own},
    }
    assert json.loads(_row(ctx, plain)["meta"]) == {"openwebui_import": own}  # nothing to add: as it was
    reasons = sorted(x["reason"] for x in _report(report) if x["id"] == eid)
    assert len(reasons) == 2 and reasons[0].startswith(
        "meta.openwebui_import was in Open WebUI already: kept under"
    )
    assert summary.runs_altered == 1  # one run, two lines


def test_an_integer_past_64_bits_is_reported(webui_db: WebUIDb, ctx: Context, tmp_path: Path) -> None:
    """A run's detail answers such an integer as the nearest float (orjson's reading, as for a
    posted run): the import says so per run. orjson reads u64 and i64 exactly."""
    fid = _source(webui_db)
    big = webui_db.add_execution(fid, "alice", created_at=T0, inputs={"n": 123456789012345678901234567890})
    past = webui_db.add_execution(fid, "alice", created_at=T0, errors={"n": [-9223372036854775809]})
    exact = webui_db.add_execution(
        fid, "alice", created_at=T0, inputs={"u": 18446744073709551615, "i": -9223372036854775808}
    )
    in_text = webui_db.add_execution(
        fid, "alice", created_at=T0, inputs={"s": ": 123456789012345678901234567890"}
    )
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    lines = {x["id"]: (x["action"], x["reason"]) for x in _report(report)}
    assert lines[big][0] == "altered" and lines[big][1].startswith("inputs holds an integer past 64 bits")
    assert lines[past][1].startswith("errors holds an integer past 64 bits")
    assert exact not in lines and in_text not in lines  # read exactly; digits in a string are text
    assert summary.runs_altered == 2 and _ids(ctx) == sorted([big, past, exact, in_text])


def test_a_fractional_created_at_and_empty_payload_text_are_reported(tmp_path: Path, ctx: Context) -> None:
    """SQLite keeps a REAL created_at and '' in a JSON column (PostgreSQL's types hold
    neither): the first was stored truncated, the second as null, each without a report line."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        frac = db.add_execution(fid, "alice", created_at=T0)
        db.execute("UPDATE flow_execution SET created_at = ? WHERE id = ?", (T0 + 0.7, frac))
        empty = db.add_execution(fid, "alice", created_at=T0)
        db.execute("UPDATE flow_execution SET inputs = '', errors = '', meta = '' WHERE id = ?", (empty,))
        null = db.add_execution(fid, "alice", created_at=T0)
        db.execute("UPDATE flow_execution SET inputs = NULL WHERE id = ?", (null,))
        report = tmp_path / "r.jsonl"
        summary = importer.import_openwebui(ctx, db.url, report=report)
        assert summary.runs_stored == 3 and summary.runs_altered == 2
        assert _row(ctx, frac)["at"] == T0  # rounded down to the second
        stored = _row(ctx, empty)
        assert (stored["inputs"], stored["errors"], stored["meta"]) == (None, None, "{}")
        lines = {x["id"]: (x["action"], x["reason"]) for x in _report(report)}
        assert lines[frac] == (
            "altered",
            f"created_at {T0 + 0.7} has a fraction of a second: stored rounded down to the second, as {T0}",
        )
        assert lines[empty][0] == "altered" and lines[empty][1].startswith(
            "inputs, errors, meta held empty text, which is not JSON: stored as no value"
        )
        assert null not in lines  # NULL is no value already
    finally:
        db.close()
