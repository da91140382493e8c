"""`import openwebui` in the library: Open WebUI's rows in SQLite and PostgreSQL, moved in exactly."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from analytics.access.permissions import Viewer
from analytics.core.clock import epoch_seconds
from analytics.core.context import Context
from analytics.flows.registry import flow_version
from analytics.history import ingest, runs
from analytics.openwebui import importer
from tests.openwebui.webui_db import WebUIDb

ADMIN = Viewer("alice", "admin")
T0 = 1_750_000_000  # mid 2025: the shipped prices cover it
NODES = [{"id": "model_1", "type": "model"}]
SPREAD = {str(i): ch for i, ch in enumerate("hello world")}


def _payloads(i: int) -> dict[str, Any]:
    """Varied bodies: usage-reporting nodes, the editor's character spread, errors, nulls."""
    node_results: dict[str, Any] = {
        "model_1739905519876_k3j9x2abq": {**SPREAD, "modelId": "gpt-4o-mini"},
        "input_1": {"value": f"run {i}"},
        "model_2": {
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 10 + i, "completion_tokens": 3},
            "type": "model",
        },
    }
    return {
        "inputs": {"prompt": "Say hello " * (i % 3 + 1), "n": i, "nested": {"a": [1, 2.5, None, True]}},
        "outputs": node_results if i % 2 == 0 else {"final": "ünïcode ✓", "float": 0.1 + 0.2},
        "node_results": node_results,
        "errors": {"model_2": "rate limited"} if i % 4 == 3 else None,
        "meta": {"source": "webui", "i": i} if i % 5 else {},
    }


def _fill(db: WebUIDb, n: int = 12) -> tuple[str, str, list[str]]:
    db.add_user("alice", "admin")
    db.add_user("bob", "user")
    db.add_group("team", ["alice", "bob"])
    old = db.add_flow("alice", name="old", nodes=NODES, created_at=T0 + 50)  # changed after some runs
    new = db.add_flow("bob", name="new", nodes=[*NODES, {"id": "x"}], access_control={}, created_at=T0 - 10)
    ids = []
    for i in range(n):
        ids.append(
            db.add_execution(
                old if i % 2 else new,
                "bob" if i % 3 else "alice",
                status=("success", "error", "aborted")[i % 3],
                execution_time=100 * i,
                created_at=T0 + i * 10 - (i % 2) * 10,  # ties on created_at
                **_payloads(i),
            )
        )
    return old, new, ids


def _source_rows(db: WebUIDb) -> list[tuple[Any, ...]]:
    cast = "CAST({} AS TEXT)"
    cols = ["id", "flow_id", "user_id", "status", "execution_time", "created_at"] + [
        cast.format(c) for c in ("inputs", "outputs", "node_results", "errors", "meta")
    ]
    return db.execute(f"SELECT {', '.join(cols)} FROM flow_execution ORDER BY id")


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def test_round_trip_exact(webui_db: WebUIDb, ctx: Context, tmp_path: Path) -> None:
    old, new, _ = _fill(webui_db)
    summary = importer.import_openwebui(ctx, webui_db.url, report=tmp_path / "report.jsonl", chunk_rows=5)
    assert (summary.users, summary.groups, summary.flows) == (2, 1, 2)
    assert summary.runs_stored == summary.runs_read == 12
    assert summary.runs_skipped == summary.runs_altered == 0
    assert (tmp_path / "report.jsonl").read_text() == ""
    versions = {r[0]: r[1] for r in webui_db.execute("SELECT id, CAST(nodes AS TEXT) FROM flow")}
    for eid, fid, uid, status, ms, created, inputs, outputs, node_results, errors, meta in _source_rows(
        webui_db
    ):
        run = runs.get_execution(ctx, ADMIN, fid, eid)
        assert (run.id, run.flow_id, run.user_id, run.status, run.execution_time) == (
            eid,
            fid,
            uid,
            status,
            ms,
        )
        assert epoch_seconds(run.created_at) == created
        assert run.inputs == _loads(inputs)
        assert run.outputs == _loads(outputs)
        assert run.node_results == _loads(node_results)
        assert run.errors == _loads(errors)
        assert run.meta == _loads(meta)
        # the current definition ran only if the run is newer than the flow's last change
        expected = (
            flow_version(json.loads(versions[fid]), [])
            if created >= (T0 + 50 if fid == old else T0 - 10)
            else "unknown"
        )
        assert run.flow_version == expected
    assert ctx.counters.stats(new).total_executions == 6
    assert ctx.directory.user("bob") is not None and ctx.directory.groups_of("bob") == {"team"}
    assert ctx.directory.flow(new) is not None and ctx.directory.flow(new).owner_id == "bob"


def test_node_facts_equal_a_posted_run(webui_db: WebUIDb, ctx: Context) -> None:
    """An imported run's facts, tokens and cost are what ingest computes for the same body."""
    _, new, ids = _fill(webui_db, n=8)
    importer.import_openwebui(ctx, webui_db.url)
    for i, eid in enumerate(ids):
        if i % 2:
            continue
        imported = runs.get_execution(ctx, ADMIN, new, eid)
        body = {
            "flow_id": new,
            "status": imported.status,
            "execution_time": imported.execution_time,
            "created_at": epoch_seconds(imported.created_at),  # prices are by day
            **_payloads(i),
        }
        [result] = ingest.save_executions(ctx, ADMIN, [body])
        assert result.id is not None, result.detail
        posted = runs.get_execution(ctx, ADMIN, new, result.id)
        assert imported.nodes == posted.nodes
        assert imported.nodes and imported.cost  # the comparison is not of two empty lists
        assert (imported.tokens_in, imported.tokens_out, imported.tokens_estimated, imported.cost) == (
            posted.tokens_in,
            posted.tokens_out,
            posted.tokens_estimated,
            posted.cost,
        )
        assert imported.outputs == posted.outputs and imported.meta == posted.meta


def _count(ctx: Context) -> list[tuple[Any, ...]]:
    return ctx.store.read(
        lambda c: c.execute("SELECT count(*), count(DISTINCT id) FROM executions").fetchall()
    )


def test_twice_is_once(webui_db: WebUIDb, ctx: Context) -> None:
    _fill(webui_db)
    first = importer.import_openwebui(ctx, webui_db.url, chunk_rows=4)
    second = importer.import_openwebui(ctx, webui_db.url, chunk_rows=4)
    assert first.runs_stored == 12 and second.runs_stored == 0
    assert (second.total_read, second.total_stored) == (12, 12)
    assert _count(ctx) == [(12, 12)]


def test_killed_midway_then_rerun_is_exactly_once(webui_db: WebUIDb, ctx: Context) -> None:
    _, _, ids = _fill(webui_db, n=20)
    with pytest.raises(importer.InjectedFailure):
        importer.import_openwebui(ctx, webui_db.url, chunk_rows=3, fail_after_chunks=2)
    assert _count(ctx) == [(6, 6)]
    # a run saved in Open WebUI meanwhile (newer than the cursor) comes in too
    fid = webui_db.execute("SELECT id FROM flow ORDER BY id LIMIT 1")[0][0]
    late = webui_db.add_execution(fid, "bob", created_at=T0 + 10_000)
    again = importer.import_openwebui(ctx, webui_db.url, chunk_rows=3)
    assert again.runs_stored == 15
    assert _count(ctx) == [(21, 21)]
    stored = {
        r[0] for r in ctx.store.read(lambda c: c.execute("SELECT id::VARCHAR FROM executions").fetchall())
    }
    assert stored == {*ids, late}


def test_chunks_are_cut_by_bytes_too_and_resume_exactly_once(webui_db: WebUIDb, ctx: Context) -> None:
    """Open WebUI's usual runs are 30-60 KB: 20,000 a chunk took 6 GB. After a first chunk that
    probes the runs' size (up to 1,000 runs, here `chunk_rows`), chunks hold about `chunk_bytes`;
    a kill between them still resumes exactly once."""
    _, _, ids = _fill(webui_db, n=20)
    with pytest.raises(importer.InjectedFailure):
        importer.import_openwebui(ctx, webui_db.url, chunk_rows=4, chunk_bytes=1, fail_after_chunks=3)
    assert _count(ctx) == [(6, 6)]  # 4, then one run a chunk: each run is past the budget alone
    done: list[int] = []
    again = importer.import_openwebui(
        ctx, webui_db.url, chunk_rows=4, chunk_bytes=1, on_progress=lambda d, _: done.append(d)
    )
    assert again.runs_stored == 14 and _count(ctx) == [(20, 20)]
    assert [b - a for a, b in itertools.pairwise(done)] == [4] + [1] * 10
    stored = {
        r[0] for r in ctx.store.read(lambda c: c.execute("SELECT id::VARCHAR FROM executions").fetchall())
    }
    assert stored == set(ids)


def test_stats_follow_each_chunk_as_it_commits(webui_db: WebUIDb, ctx: Context) -> None:
    """Through a running server the import stores a chunk at a time: a flow's stats, its list's
    total and its remembered page starts must follow each one (they lagged until the import's
    end, the stats counting fewer runs than the list showed)."""
    old, new, _ = _fill(webui_db, n=20)
    seen: list[tuple[dict[str, int], dict[str, int]]] = []

    def progress(done: int, total: int) -> None:
        rows = ctx.store.read(
            lambda c: c.execute("SELECT flow_id, count(*) FROM executions GROUP BY ALL").fetchall()
        )
        stored = {flow: 0 for flow in (old, new)} | {flow: n for flow, n in rows}
        counted = {flow: ctx.counters.stats(flow).total_executions for flow in (old, new)}
        seen.append((counted, stored))

    versions = ctx.counters.version(old)
    importer.import_openwebui(ctx, webui_db.url, chunk_rows=3, on_progress=progress)
    assert len(seen) > 5
    assert all(counted == stored for counted, stored in seen), seen
    assert seen[-1][0] == {old: 10, new: 10}
    assert ctx.counters.version(old) - versions >= 6  # a bump a chunk: page starts are not reused


def test_rule_breakers_follow_their_rule_and_are_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    gone = webui_db.add_flow("alice", nodes=NODES)
    good = webui_db.add_execution(fid, "alice", created_at=T0, meta={"k": 1})
    orphan = webui_db.add_execution(gone, "alice", created_at=T0)
    never = webui_db.add_execution("no-such-flow", "alice", created_at=T0)
    odd = webui_db.add_execution(fid, "alice", status="running", meta={"k": 2}, created_at=T0)
    negative = webui_db.add_execution(fid, "alice", execution_time=-5, created_at=T0)
    not_uuid = webui_db.add_execution(fid, "alice", execution_id="not-a-uuid", created_at=T0)
    webui_db.delete_flow(gone)
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    by_id = {(x["id"], x["action"]): x["reason"] for x in lines}
    assert set(by_id) == {
        (orphan, "skipped"),
        (never, "skipped"),
        (not_uuid, "skipped"),
        (odd, "altered"),
        (negative, "altered"),
    }
    assert "orphan" in by_id[(orphan, "skipped")] and "UUID" in by_id[(not_uuid, "skipped")]
    assert (summary.runs_stored, summary.runs_skipped, summary.runs_altered) == (3, 3, 2)
    run = runs.get_execution(ctx, ADMIN, fid, odd)
    assert run.status == "error" and run.meta == {"k": 2, "openwebui_import": {"status": "running"}}
    run = runs.get_execution(ctx, ADMIN, fid, negative)
    assert run.execution_time == 0 and run.meta == {"openwebui_import": {"execution_time": -5}}
    assert runs.get_execution(ctx, ADMIN, fid, good).meta == {"k": 1}
    # a rerun reports the same, once
    importer.import_openwebui(ctx, webui_db.url, report=report)
    assert [json.loads(line) for line in report.read_text().splitlines()] == lines


def test_payloads_that_are_not_objects_are_skipped_and_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """JSON of another kind where the contract has an object or null: a detail could not answer
    it (it answered 500), so the run follows the not-JSON rule: skipped, and reported."""
    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    bad = {}
    for name, text in [
        ("node_results", "[1, 2]"),
        ("inputs", '"text"'),
        ("outputs", "true"),
        ("errors", "5"),
        ("meta", ' ["x"]'),
    ]:
        eid = webui_db.add_execution(fid, "alice", created_at=T0)
        webui_db.execute(f"UPDATE flow_execution SET {name} = ? WHERE id = ?", (text, eid))
        bad[eid] = name
    kept = webui_db.add_execution(fid, "alice", created_at=T0, errors={"n1": {"code": 1}}, meta=None)
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {x["id"]: (x["action"], x["reason"]) for x in lines} == {
        eid: ("skipped", f"{name} is not a JSON object or null") for eid, name in bad.items()
    }
    assert (summary.runs_stored, summary.runs_skipped) == (1, 5)
    run = runs.get_execution(ctx, ADMIN, fid, kept)
    assert run.errors == {"n1": {"code": 1}} and run.meta == {}


def test_a_uuid_stored_already_in_its_other_spelling_is_skipped_and_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """A run imported, then a row with the same UUID in capitals (and other data) saved in Open
    WebUI: the rerun stored nothing of it but reported it as altered ("stored as ..."), so the
    counts per flow could not be balanced against the report's skipped rows."""
    import uuid

    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    plain = str(uuid.uuid4())
    webui_db.add_execution(fid, "alice", execution_id=plain, created_at=T0, execution_time=1)
    assert importer.import_openwebui(ctx, webui_db.url).runs_stored == 1
    webui_db.add_execution(fid, "alice", execution_id=plain.upper(), created_at=T0 - 60, execution_time=2)
    report = tmp_path / "r.jsonl"
    again = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert (again.runs_read, again.runs_stored, again.runs_skipped, again.runs_altered) == (1, 0, 1, 0)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(x["id"], x["action"]) for x in lines] == [(plain.upper(), "skipped")]
    assert f"the same id as run {plain}, stored already" in lines[0]["reason"]
    assert runs.get_execution(ctx, ADMIN, fid, plain).execution_time == 1  # the first row's run


def test_times_out_of_range_are_skipped_and_other_uuid_spellings_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """A created_at in milliseconds or nanoseconds stopped the whole import (make_timestamp
    overflowed); past a day ahead it breaks the posted run's rule. An id in capitals, braces or
    without dashes is a UUID: stored in its usual spelling, and the report says so."""
    import time
    import uuid

    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    far = {
        webui_db.add_execution(fid, "alice", created_at=at): at
        for at in (T0 * 1000, T0 * 10**9, int(time.time()) + 3 * 86400, -70_000_000_000)
    }
    ok = [webui_db.add_execution(fid, "alice", created_at=at) for at in (-5, int(time.time()) + 3600)]
    plain = uuid.uuid4()
    spelled = {
        str(plain).upper(): str(plain),
        "{" + str(u := uuid.uuid4()) + "}": str(u),
        (v := uuid.uuid4()).hex: str(v),
    }
    for eid in spelled:
        webui_db.add_execution(fid, "alice", execution_id=eid, created_at=T0)
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    lines = {json.loads(line)["id"]: json.loads(line) for line in report.read_text().splitlines()}
    assert set(lines) == set(far) | set(spelled)
    for eid, at in far.items():
        assert lines[eid]["action"] == "skipped" and lines[eid]["reason"].startswith(
            f"created_at {at} is not a time"
        )
    for eid, stored_as in spelled.items():
        assert lines[eid] == {
            "id": eid,
            "action": "altered",
            "reason": f"id is a UUID written another way: stored as {stored_as}",
        }
        assert epoch_seconds(runs.get_execution(ctx, ADMIN, fid, stored_as).created_at) == T0
    assert (summary.runs_stored, summary.runs_skipped, summary.runs_altered) == (5, 4, 3)
    assert [runs.get_execution(ctx, ADMIN, fid, eid).id for eid in ok] == ok
    # a rerun stores nothing twice and reports the same
    again = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert again.runs_stored == 0 and set(
        json.loads(x)["id"] for x in report.read_text().splitlines()
    ) == set(lines)


def test_flows_and_groups_with_bad_json_are_imported_empty_and_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """Values Open WebUI's own reads would fail on (SQLite keeps any text; PostgreSQL's `json`
    keeps any JSON): read as empty, a flow's grants as private, and each listed in the report."""
    webui_db.add_user("alice", "admin")
    webui_db.add_user("bob", "user")
    fid = webui_db.add_flow("alice", nodes=NODES, access_control={"read": {"user_ids": ["bob"]}})
    odd = webui_db.add_flow("alice", nodes=NODES)
    webui_db.add_group("g1", ["bob"])
    if webui_db.postgres:  # JSON of the wrong kind
        webui_db.execute(
            "UPDATE flow SET nodes = '5', meta = '[]', access_control = '\"all\"' WHERE id = ?", (odd,)
        )
        webui_db.execute("""UPDATE "group" SET user_ids = '{"bob": 1}'""")
        wrong = {
            "nodes": "is a number, not a list",
            "meta": "is a list, not an object",
            "access_control": "is a string, not an object",
        }
    else:  # text that is not JSON
        webui_db.execute(
            "UPDATE flow SET nodes = '[{', meta = '{', access_control = 'x' WHERE id = ?", (odd,)
        )
        webui_db.execute("""UPDATE "group" SET user_ids = '["bob"'""")
        wrong = {name: "is not JSON" for name in ("nodes", "meta", "access_control")}
    run = webui_db.add_execution(odd, "alice", created_at=T0)
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert summary.runs_stored == 1 and summary.flows == 2 and summary.groups == 1
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {(x["id"], x["action"]) for x in lines} == {(odd, "altered"), ("g1", "altered")}
    reasons = sorted(x["reason"] for x in lines if x["id"] == odd)
    assert reasons == sorted(
        f"flow {name} {wrong[name]}: imported as {'[]' if name == 'nodes' else '{}'}" for name in wrong
    )
    stored = ctx.store.read(
        lambda c: c.execute("SELECT nodes, meta, access_control FROM flows WHERE id = ?", [odd]).fetchone()
    )
    assert [json.loads(v) for v in stored] == [[], {}, {}]
    assert runs.get_execution(ctx, ADMIN, odd, run).id == run
    members = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM group_members").fetchone())
    assert members == (0,)
    # the well-formed flow keeps its grants exactly
    kept = ctx.store.read(
        lambda c: c.execute("SELECT access_control FROM flows WHERE id = ?", [fid]).fetchone()
    )
    assert json.loads(kept[0]) == {"read": {"user_ids": ["bob"]}}


def test_a_source_failing_midway_is_its_error_and_what_committed_is_counted(
    webui_db: WebUIDb, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open WebUI's database damaged or restarted mid-import: the import fails as the source's
    failure (a 502 through the server, not an internal error), and the chunks that committed
    are in the flows' stats (they read 0 until a restart: the recount was skipped)."""
    from analytics.core.errors import UpstreamFailed
    from analytics.history import runs as history
    from tests.factories import ROOT

    _fill(webui_db, n=20)
    runs = importer.Source.runs
    calls = 0

    def damaged_after_two(self: importer.Source, ids: list[str], blobs: list[str] | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls > 2:
            return self.table("SELECT * FROM flow_execution_gone")  # the driver's own error
        return runs(self, ids, blobs)

    monkeypatch.setattr(importer.Source, "runs", damaged_after_two)
    with pytest.raises(
        UpstreamFailed, match=r"reading Open WebUI's database .* failed: .*flow_execution_gone"
    ):
        importer.import_openwebui(ctx, webui_db.url, chunk_rows=3)
    stored = ctx.store.read(
        lambda c: c.execute("SELECT flow_id, count(*) FROM executions GROUP BY ALL").fetchall()
    )
    committed = sum(n for _, n in stored)
    assert 0 < committed <= 6  # chunks read before the damage (the one being prepared may not be)
    for flow_id, n in stored:
        assert history.get_stats(ctx, ROOT, flow_id).total_executions == n
    monkeypatch.undo()
    assert importer.import_openwebui(ctx, webui_db.url, chunk_rows=3).runs_stored == 20 - committed


def test_a_missing_source_is_a_clear_error(ctx: Context, tmp_path: Path) -> None:
    from analytics.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="no SQLite database"):
        importer.import_openwebui(ctx, f"sqlite:///{tmp_path / 'nope.db'}")
    with pytest.raises(InvalidInput, match="sqlite:////"):
        importer.import_openwebui(ctx, "mysql://x")


def test_a_source_that_is_not_open_webuis_is_a_clear_error(
    ctx: Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each was an internal error (a 500 through the server, a traceback from the CLI). The
    driver's words go to the log, not into the error (the server answers an admin with it)."""
    import sqlite3

    from analytics.core.errors import InvalidInput, UpstreamFailed

    caplog.set_level(logging.WARNING, logger="flowhistory")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    with pytest.raises(InvalidInput, match=r"notes.txt is not an Open WebUI database: it has no") as bad:
        importer.import_openwebui(ctx, f"sqlite:///{text}")
    assert "file is not a database" not in bad.value.detail
    assert "file is not a database" in caplog.text
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(
        InvalidInput, match=r"other.db is not an Open WebUI database: it has no \"user\""
    ) as bad:
        importer.import_openwebui(ctx, f"sqlite:///{other}")
    assert "no such table" not in bad.value.detail and "no such table: user" in caplog.text
    with pytest.raises(
        UpstreamFailed, match=r"cannot open Open WebUI's database postgresql://u:\*\*\*@"
    ) as caught:
        importer.import_openwebui(ctx, "postgresql://u:s3cret@127.0.0.1:1/webui")
    assert "s3cret" not in str(caught.value)
    assert ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchone()) == (0,)


def test_runs_holding_halves_of_characters_are_stored_and_reported(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """Open WebUI keeps the editor's spread of an emoji as it came: two keys holding one UTF-16
    half each, written as escapes. The run is stored, each lone half as U+FFFD, and reported as
    altered; a pair of halves in one string is the character, kept."""
    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    spread = {"0": "H", "1": "i", "2": "\ud83d", "3": "\ude00", "modelId": "gpt-4o"}
    halves = webui_db.add_execution(
        fid, "alice", created_at=T0, node_results={"model_1": spread}, outputs={"model_1": spread}
    )
    in_errors = webui_db.add_execution(fid, "alice", created_at=T0, errors={"model_1": "bad \udc00"})
    whole = webui_db.add_execution(fid, "alice", created_at=T0, inputs={"prompt": "hi \U0001f600"})
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert (summary.runs_stored, summary.runs_skipped) == (3, 0)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted((x["id"], x["action"]) for x in lines) == sorted(
        [(halves, "altered"), (in_errors, "altered")]
    )
    assert all("U+FFFD" in x["reason"] for x in lines)
    run = runs.get_execution(ctx, ADMIN, fid, halves)
    mended = {"0": "H", "1": "i", "2": "\ufffd", "3": "\ufffd", "modelId": "gpt-4o"}
    assert run.node_results == {"model_1": mended} and run.outputs == {"model_1": mended}
    assert runs.get_execution(ctx, ADMIN, fid, in_errors).errors == {"model_1": "bad \ufffd"}
    assert runs.get_execution(ctx, ADMIN, fid, whole).inputs == {"prompt": "hi \U0001f600"}


def test_keys_that_differ_only_in_halves_are_reported_as_read_as_one(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """Two keys holding different lone halves both read as U+FFFD: the run said only "stored as
    U+FFFD" while one of the two values can no longer be read (a posted body is refused)."""
    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice", nodes=NODES)
    merged = webui_db.add_execution(
        fid,
        "alice",
        created_at=T0,
        node_results={"model_1": {"\ud83d": "first", "\ud83e": "second"}},  # noqa: F601 (two keys: ruff reads both halves as one)
    )
    one = webui_db.add_execution(fid, "alice", created_at=T0, node_results={"model_1": {"\ud83d": "only"}})
    report = tmp_path / "r.jsonl"
    assert importer.import_openwebui(ctx, webui_db.url, report=report).runs_stored == 2
    reasons = {x["id"]: x["reason"] for x in map(json.loads, report.read_text().splitlines())}
    assert "only the last one's value is answered" in reasons[merged], reasons
    assert "U+FFFD" in reasons[one] and "two keys" not in reasons[one], reasons
