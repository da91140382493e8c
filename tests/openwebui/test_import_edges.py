"""Sources at the edges an outside tester found: no runs at all, a user's or flow's time outside
Python's datetime range, a flow's name past NAME_MAX. Each crashed the import (a traceback
offline, a 500 through the server) or stored what the API's own client could not send back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.access import users
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.flows.registry import NAME_MAX
from analytics.openwebui import importer
from analytics.openwebui.sync import _epoch as mirror_epoch
from api.app import create_app
from tests.factories import SECRET, bearer
from tests.live_server import FLOWHISTORY, server_env
from tests.openwebui.webui_db import WebUIDb

T0 = 1_750_000_000
TIME_MAX = 253402300799  # 9999-12-31 23:59:59, the mirror's bound (sync._seconds)


def _report(path: Path) -> dict[tuple[str, str], str]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {(x["id"], x["action"]): x["reason"] for x in lines}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TestClient]:
    """The server in process, an admin of its own ("root"); a 500 answers as one, not raised."""
    settings = Settings(db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        users.create_user(client.app.state.ctx, "root", role="admin")  # type: ignore[attr-defined]
        yield client


def _step(client: TestClient, url: str) -> Any:
    r = client.post("/api/v1/executions/import/openwebui", json={"from": url}, headers=bearer("root"))
    assert r.status_code == 200, r.text
    return r.json()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOWHISTORY, *args], env=server_env(), capture_output=True, text=True, timeout=120)


# -- 1. no runs at all --------------------------------------------------------------------------


def test_a_source_with_no_runs_imports_its_users_and_flows(webui_db: WebUIDb, ctx: Context) -> None:
    """An empty flow_execution: SQLite's driver typed the id column int64 (no row to infer text
    from) and its cast to binary failed, after users and flows were in; every rerun failed alike."""
    webui_db.add_user("alice", "admin")
    fid = webui_db.add_flow("alice")
    for _ in range(2):  # the rerun too
        summary = importer.import_openwebui(ctx, webui_db.url)
        assert summary.finished and (summary.runs_read, summary.runs_stored, summary.total_in_source) == (
            0,
            0,
            0,
        )
    assert ctx.store.read(lambda c: c.execute("SELECT id FROM flows").fetchall()) == [(fid,)]
    eid = webui_db.add_execution(fid, "alice", created_at=T0)  # the first run Open WebUI saves then
    summary = importer.import_openwebui(ctx, webui_db.url)
    assert summary.runs_stored == 1
    assert ctx.store.read(lambda c: c.execute("SELECT CAST(id AS VARCHAR) FROM executions").fetchall()) == [
        (eid,)
    ]


def test_a_source_with_no_runs_through_the_server(served: TestClient, tmp_path: Path) -> None:
    """The same through the import step's route: a 500 before."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("alice", "admin")
    db.add_flow("alice")
    for _ in range(2):
        body = _step(served, db.url)
        assert body["finished"] and body["flows"] in (0, 1) and body["runs_read"] == 0


def test_a_source_with_no_runs_through_the_cli(tmp_path: Path) -> None:
    """Offline, the CLI printed a traceback ending in ArrowNotImplementedError."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("alice", "admin")
    db.add_flow("alice")
    db.close()
    report = tmp_path / "report.jsonl"
    args = ["import", "openwebui", "--from", db.url, "--db", str(tmp_path / "s" / "store.duckdb")]
    done = _cli(*args, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "0 stored" in " ".join(done.stdout.split())
    assert report.read_text() == ""


# -- 2. times outside Python's datetime range ---------------------------------------------------


def _times_source(db: WebUIDb) -> dict[str, str]:
    db.add_user("alice", "admin")
    db.add_user("milli", "user")
    db.execute('UPDATE "user" SET created_at = 1796000000000 WHERE id = ?', ("milli",))
    ids = {
        "ms": db.add_flow("alice", created_at=1796000000000),  # epoch milliseconds: year 58882
        "far_back": db.add_flow("alice", created_at=-99999999999999),
        "before_1970": db.add_flow("alice", created_at=-5),
        "plain": db.add_flow("alice", created_at=T0),
        "updated_ms": db.add_flow("alice", created_at=T0),
    }
    db.execute("UPDATE flow SET updated_at = 1796000000000 WHERE id = ?", (ids["updated_ms"],))
    return ids


def test_times_out_of_range_are_clamped_as_the_mirror_reads_them(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """`datetime.fromtimestamp` raised `year 58882 is out of range` on epoch milliseconds (and
    on -99999999999999); the mirror (Open WebUI mode) clamps to 1970..9999-12-31, and so does the
    import now, reporting each time it changed as altered under the row's id."""
    fids = _times_source(webui_db)
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert summary.finished and summary.flows == 5 and summary.users == 2
    rows = ctx.store.read(
        lambda c: c.execute("SELECT id, epoch(created_at), epoch(updated_at) FROM flows").fetchall()
    )
    stored = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    assert stored[fids["ms"]] == (TIME_MAX, TIME_MAX)
    assert stored[fids["far_back"]] == (0, 0)
    assert stored[fids["before_1970"]] == (0, 0)
    assert stored[fids["plain"]] == (T0, T0)
    assert stored[fids["updated_ms"]] == (T0, TIME_MAX)
    # the mirror reads each of these values as the import stored it
    for value, expect in ((1796000000000, TIME_MAX), (-99999999999999, 0), (-5, 0), (T0, T0)):
        assert int(mirror_epoch(value).timestamp()) == int(importer._epoch(value).timestamp()) == expect
    (milli_at,) = ctx.store.read(
        lambda c: c.execute("SELECT epoch(created_at) FROM users WHERE id = 'milli'").fetchall()
    )
    assert int(milli_at[0]) == TIME_MAX
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {x["action"] for x in lines} == {"altered"}
    reasons = {(x["id"], x["reason"].split(" is not")[0]) for x in lines}
    assert reasons == {
        ("milli", "user created_at 1796000000000"),
        (fids["ms"], "flow created_at 1796000000000"),
        (fids["ms"], "flow updated_at 1796000000000"),
        (fids["far_back"], "flow created_at -99999999999999"),
        (fids["far_back"], "flow updated_at -99999999999999"),
        (fids["before_1970"], "flow created_at -5"),
        (fids["before_1970"], "flow updated_at -5"),
        (fids["updated_ms"], "flow updated_at 1796000000000"),
    }
    assert {"id": fids["ms"], "action": "altered", "reason": (
        "flow created_at 1796000000000 is not a time in epoch seconds from 1970 to 9999-12-31:"
        f" imported as {TIME_MAX}, as Open WebUI mode reads it"
    )} in lines  # fmt: skip
    assert summary.issues and importer.import_openwebui(ctx, webui_db.url).finished  # a rerun


def test_times_out_of_range_through_the_server(served: TestClient, tmp_path: Path) -> None:
    """A 500 before; the flow then answers its clamped times."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fids = _times_source(db)
    assert _step(served, db.url)["finished"]
    r = served.get(f"/api/v1/flows/{fids['ms']}", headers=bearer("root"))
    assert r.status_code == 200 and (r.json()["created_at"], r.json()["updated_at"]) == (TIME_MAX, TIME_MAX)


def test_times_out_of_range_through_the_cli(tmp_path: Path) -> None:
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fids = _times_source(db)
    db.close()
    report = tmp_path / "report.jsonl"
    args = ["import", "openwebui", "--from", db.url, "--db", str(tmp_path / "s" / "store.duckdb")]
    done = _cli(*args, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert (fids["ms"], "altered") in _report(report)


# -- 3. a name past NAME_MAX ----------------------------------------------------------------------


def test_a_name_past_the_limit_is_cut_and_can_be_sent_back(served: TestClient, tmp_path: Path) -> None:
    """Imported as it was, a 300-character name could not be saved back (POST /{id} with the
    flow as read: 422 string_too_long) nor its export imported. Cut to NAME_MAX characters
    (code points, as the API counts them), reported as altered; a name at the limit is kept."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("root", "admin")
    long_ascii = db.add_flow("root", name="n" * 300)
    long_emoji = db.add_flow("root", name="\U0001f600" * (NAME_MAX + 1))
    at_limit = db.add_flow("root", name="x" * NAME_MAX)
    no_name_long_id = db.add_flow("root", name="", flow_id="i" * 300)  # the name falls back to the id
    db.add_execution(long_ascii, "root", created_at=T0)
    report = tmp_path / "r.jsonl"
    ctx: Context = served.app.state.ctx  # type: ignore[attr-defined]
    importer.import_openwebui(ctx, db.url, report=report)
    h = bearer("root")
    expected = {
        long_ascii: "n" * NAME_MAX,
        long_emoji: "\U0001f600" * NAME_MAX,
        at_limit: "x" * NAME_MAX,
        no_name_long_id: "i" * NAME_MAX,
    }
    for fid, name in expected.items():
        flow = served.get(f"/api/v1/flows/{fid}", headers=h).json()
        saved = served.post(f"/api/v1/flows/{fid}", json=flow, headers=h)  # the same object back
        assert saved.status_code == 200, saved.text
        assert flow["name"] == name
        exported = served.get(f"/api/v1/flows/{fid}/export", headers=h).json()
        again = served.post("/api/v1/flows/import", json=exported, headers=h)
        assert again.status_code == 200 and again.json()["name"] == name, again.text
    issues = _report(report)
    assert set(issues) == {(long_ascii, "altered"), (long_emoji, "altered"), (no_name_long_id, "altered")}
    assert issues[(long_ascii, "altered")] == (
        f"flow name is 300 characters, more than {NAME_MAX}: imported cut to its first {NAME_MAX}"
    )
    assert issues[(no_name_long_id, "altered")].startswith("flow name (empty: its id) is 300 characters")
