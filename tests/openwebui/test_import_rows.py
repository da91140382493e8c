"""Rows of Open WebUI's `flow_execution` that break flowhistory's rules, each through the rule
README's step 3 gives it: stored as the rule says and listed in the report, or skipped and listed;
never an import that stops, a run stored silently changed, or a stored run whose detail fails."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.context import Context
from analytics.openwebui import importer
from tests.factories import bearer
from tests.openwebui.webui_db import WebUIDb

T0 = 1_750_000_000
NODES = [{"id": "model_1", "type": "model"}]
TOO_DEEP = '{"d": ' + "[" * 254 + "]" * 254 + "}"  # 255 levels: a posted run is refused (422)
DEEP_ENOUGH = '{"d": ' + "[" * 253 + "]" * 253 + "}"  # 254 levels: a posted run may have them
COLUMNS = ("inputs", "outputs", "node_results", "errors", "meta")


def _source(db: WebUIDb) -> str:
    db.add_user("alice", "admin")
    return db.add_flow("alice", nodes=NODES, created_at=T0 - 100)


def _set(db: WebUIDb, eid: str, column: str, sql_value: str) -> None:
    """A value written as SQL (raw text, bytes, a number of another type), as SQLite keeps any."""
    db.execute(f"UPDATE flow_execution SET {column} = {sql_value} WHERE id = ?", (eid,))


def _report(path: Path) -> dict[str, tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {x["id"]: (x["action"], x["reason"]) for x in lines}


def _stored(ctx: Context) -> dict[str, dict[str, Any]]:
    rows = ctx.store.read(
        lambda c: (
            c.sql(
                "SELECT id::VARCHAR AS id, user_id, status, execution_time, inputs::VARCHAR AS inputs,"
                " meta::VARCHAR AS meta FROM executions"
            )
            .to_arrow_table()
            .to_pylist()
        )
    )
    return {r["id"]: r for r in rows}


def _detail(client: TestClient, fid: str, eid: str) -> Any:
    return client.get(f"/api/v1/flows/{fid}/executions/{eid}", headers=bearer("alice"))


def test_no_stored_run_has_a_detail_that_fails(client: TestClient, tmp_path: Path) -> None:
    """outputs and meta were checked for `NaN` and `Infinity` only (case-sensitively), and no
    column for nesting under 1,025 levels: such runs were stored, and their detail answered 500.
    Every column now follows the posted run's rule (orjson reads it and writes it back): skipped,
    and reported."""
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fid = _source(db)
    bad: dict[str, str] = {}
    texts = ['{"x": nan}', '{"x": inf}', '{"x": -Infinity}', '{"x": 1e400}', '{"x": 1,}', TOO_DEEP]
    for column in COLUMNS:
        for text in texts:
            eid = db.add_execution(fid, "alice", created_at=T0)
            db.execute(f"UPDATE flow_execution SET {column} = ? WHERE id = ?", (text, eid))
            bad[eid] = column
    kept = db.add_execution(fid, "alice", created_at=T0, meta={"note": "nan, inf and 1,]"})
    for column in COLUMNS:
        db.execute(f"UPDATE flow_execution SET {column} = ? WHERE id = ?", (DEEP_ENOUGH, kept))
    plain = db.add_execution(fid, "alice", created_at=T0, outputs={"final": "ok"})
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, db.url, report=report)
    lines = _report(report)
    assert set(lines) == set(bad)
    for eid, column in bad.items():
        action, reason = lines[eid]
        assert action == "skipped" and reason.startswith(f"{column} is "), (column, reason)
        assert _detail(client, fid, eid).status_code == 404
    assert (summary.runs_stored, summary.runs_skipped) == (2, len(bad))
    for eid in _stored(ctx):
        assert _detail(client, fid, eid).status_code == 200, eid
    assert _detail(client, fid, kept).json()["meta"] == json.loads(DEEP_ENOUGH)
    assert _detail(client, fid, plain).json()["outputs"] == {"final": "ok"}


def test_one_uuid_written_two_ways_is_stored_once_and_the_other_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """Two rows whose ids are one UUID (capitals, no dashes): one was stored and the other
    vanished, counted as "already there", or the report named the wrong one. The first by
    created_at (at a tie, the usual spelling) is imported; the other is skipped, naming it;
    the same with one run a chunk, after a kill, and on a rerun."""
    fid = _source(webui_db)
    tie = uuid.uuid4()
    later = uuid.uuid4()
    rows = [  # (id as written, created_at, which)
        (str(tie).upper(), T0, "tie upper"),
        (str(tie), T0, "tie usual"),
        (later.hex, T0 + 1, "earlier, no dashes"),
        (str(later), T0 + 2, "later, usual"),
    ]
    for eid, at, which in rows:
        webui_db.add_execution(fid, "alice", execution_id=eid, created_at=at, inputs={"which": which})
    report = tmp_path / "r.jsonl"
    expected = {
        str(tie).upper(): ("skipped", f"the same id as {tie}"),
        str(tie): None,
        later.hex: ("altered", f"id is a UUID written another way: stored as {later}"),
        str(later): ("skipped", f"the same id as {later.hex}"),
    }

    def check() -> None:
        stored = _stored(ctx)
        assert {k: json.loads(v["inputs"])["which"] for k, v in stored.items()} == {
            str(tie): "tie usual",
            str(later): "earlier, no dashes",
        }
        lines = _report(report)
        assert set(lines) == {k for k, v in expected.items() if v is not None}
        for eid, want in expected.items():
            if want is not None:
                assert lines[eid][0] == want[0] and lines[eid][1].startswith(want[1]), lines[eid]

    with pytest.raises(importer.InjectedFailure):  # one run a chunk: the pair in different chunks
        importer.import_openwebui(ctx, webui_db.url, chunk_rows=1, fail_after_chunks=1)
    summary = importer.import_openwebui(ctx, webui_db.url, chunk_rows=1, report=report)
    check()
    assert summary.runs_already_there == 0
    assert (summary.total_stored, summary.total_in_source) == (2, 4)
    again = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert again.runs_stored == 0
    check()


def test_text_that_is_not_utf8_follows_the_rules(ctx: Context, tmp_path: Path) -> None:
    """SQLite keeps any bytes in a TEXT column: one status or user_id that is not UTF-8 stopped
    the whole import, every rerun, with nothing of its chunk stored. A status becomes `error`, its
    bytes kept in hex (`meta.openwebui_import.status_hex`); a user_id or flow_id that is not text
    skips the run; all reported, the other runs stored."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fid = _source(db)
    good = [db.add_execution(fid, "alice", created_at=T0 + i) for i in range(3)]
    status = db.add_execution(fid, "alice", created_at=T0, meta={"k": 1})
    _set(db, status, "status", "CAST(x'73ff' AS TEXT)")
    user = db.add_execution(fid, "alice", created_at=T0)
    _set(db, user, "user_id", "CAST(x'75ff' AS TEXT)")
    flow = db.add_execution(fid, "alice", created_at=T0)
    _set(db, flow, "flow_id", "CAST(x'66ff' AS TEXT)")
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, db.url, report=report)
    assert (summary.runs_stored, summary.runs_skipped, summary.runs_altered) == (4, 2, 1)
    stored = _stored(ctx)
    assert set(stored) == {*good, status}
    assert stored[status]["status"] == "error"
    assert json.loads(stored[status]["meta"]) == {"k": 1, "openwebui_import": {"status_hex": "73ff"}}
    lines = _report(report)
    assert lines[status][0] == "altered" and "x'73ff'" in lines[status][1]
    assert lines[user] == ("skipped", "user_id x'75ff' is not text (not UTF-8)")
    assert lines[flow] == ("skipped", "flow_id x'66ff' is not text (not UTF-8)")


def test_times_sqlite_holds_as_text_or_fractions(ctx: Context, tmp_path: Path) -> None:
    """SQLite's CAST read 'yesterday' as 0 (a run stored in 1970), 'abc' as 0 and 12.7 as 12,
    none reported. A created_at that is not a number is none (skipped); an execution_time that
    is text is stored as 0, a fraction rounded; the original kept in meta, and reported."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fid = _source(db)
    yesterday = db.add_execution(fid, "alice", created_at=T0)
    _set(db, yesterday, "created_at", "'yesterday'")
    text = db.add_execution(fid, "alice", created_at=T0, meta={"k": 1})
    _set(db, text, "execution_time", "'abc'")
    fraction = db.add_execution(fid, "alice", created_at=T0)
    _set(db, fraction, "execution_time", "12.7")
    whole = db.add_execution(fid, "alice", created_at=T0)
    _set(db, whole, "execution_time", "12.0")  # SQLite keeps it as the integer 12
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, db.url, report=report)
    assert (summary.runs_stored, summary.runs_skipped, summary.runs_altered) == (3, 1, 2)
    stored = _stored(ctx)
    assert yesterday not in stored
    assert (stored[text]["execution_time"], json.loads(stored[text]["meta"])) == (
        0,
        {"k": 1, "openwebui_import": {"execution_time": "abc"}},
    )
    assert (stored[fraction]["execution_time"], json.loads(stored[fraction]["meta"])) == (
        13,
        {"openwebui_import": {"execution_time": 12.7}},
    )
    assert (stored[whole]["execution_time"], json.loads(stored[whole]["meta"])) == (12, {})
    lines = _report(report)
    assert set(lines) == {yesterday, text, fraction}
    assert lines[yesterday] == ("skipped", "no created_at")
    assert lines[text][0] == "altered" and lines[text][1].startswith('execution_time "abc" is not a duration')
    assert lines[fraction][0] == "altered" and lines[fraction][1].startswith(
        "execution_time 12.7 is not a whole number of ms: stored rounded, as 13"
    )


def test_null_status_and_execution_time_are_kept_as_null(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """A NULL status was kept as `""` in meta.openwebui_import, a NULL execution_time not at all
    (json_merge_patch drops a null): the originals are null, and each is reported."""
    fid = _source(webui_db)
    both = webui_db.add_execution(fid, "alice", created_at=T0, meta={"k": 1})
    webui_db.execute("UPDATE flow_execution SET status = NULL, execution_time = NULL WHERE id = ?", (both,))
    status = webui_db.add_execution(fid, "alice", created_at=T0)
    webui_db.execute("UPDATE flow_execution SET status = NULL WHERE id = ?", (status,))
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    # runs altered, not report lines: `both` has two lines (it counted twice)
    assert (summary.runs_stored, summary.runs_altered) == (2, 2)
    stored = _stored(ctx)
    assert (stored[both]["status"], stored[both]["execution_time"]) == ("error", 0)
    assert json.loads(stored[both]["meta"]) == {
        "k": 1,
        "openwebui_import": {"status": None, "execution_time": None},
    }
    assert json.loads(stored[status]["meta"]) == {"openwebui_import": {"status": None}}
    reasons = sorted(json.loads(x)["reason"] for x in report.read_text().splitlines())
    assert [r.split(" is ")[0] for r in reasons] == ["execution_time null", "status null", "status null"]
