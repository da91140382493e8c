"""`flowhistory import openwebui` as a user runs it: with the store free, and with a server holding it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live_server import FLOWHISTORY, LiveServer, server_env
from tests.openwebui.webui_db import WebUIDb

T0 = 1_750_000_000


def _source(tmp_path: Path) -> tuple[WebUIDb, str, list[str]]:
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("alice", "admin")
    fid = db.add_flow("alice", nodes=[{"id": "n"}])
    gone = db.add_flow("alice")
    ids = [db.add_execution(fid, "alice", created_at=T0 + i, meta={"i": i}) for i in range(7)]
    ids.append(db.add_execution(gone, "alice", created_at=T0))
    db.delete_flow(gone)
    return db, fid, ids


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWHISTORY, *args], env={**server_env(), **(env or {})}, capture_output=True, text=True, timeout=120
    )


def test_store_free_then_rerun(tmp_path: Path) -> None:
    db, _, ids = _source(tmp_path)
    store, report = tmp_path / "s" / "store.duckdb", tmp_path / "report.jsonl"
    args = ["import", "openwebui", "--from", db.url, "--db", str(store), "--report", str(report)]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    assert "7 stored, 0 already there, 1 skipped, 0 altered" in " ".join(first.stdout.split())
    assert [json.loads(x)["id"] for x in report.read_text().splitlines()] == [ids[-1]]
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert "0 stored" in " ".join(
        again.stdout.split()
    ) and "(7 of 8 in Open WebUI stored so far)" in " ".join(again.stdout.split())
    assert [json.loads(x)["id"] for x in report.read_text().splitlines()] == [ids[-1]]


def test_through_a_running_server(tmp_path: Path) -> None:
    db, fid, ids = _source(tmp_path)
    store, report = tmp_path / "s" / "store.duckdb", tmp_path / "report.jsonl"
    store.parent.mkdir()
    with LiveServer(store, "import") as server:
        done = _cli(
            "import",
            "openwebui",
            "--from",
            db.url,
            "--db",
            str(store),
            "--report",
            str(report),
            "--server",
            server.url,
        )
        assert done.returncode == 0, done.stderr
        assert "importing through it" in " ".join(done.stdout.split()) and "7 stored" in " ".join(
            done.stdout.split()
        )
        key = (store.parent / "admin_api_key").read_text().strip()
        h = {"Authorization": f"Bearer {key}"}
        for i, eid in enumerate(ids[:-1]):
            r = httpx.get(f"{server.url}/api/v1/flows/{fid}/executions/{eid}", headers=h)
            assert r.status_code == 200 and r.json()["meta"] == {"i": i} and r.json()["created_at"] == T0 + i
        assert [json.loads(x)["id"] for x in report.read_text().splitlines()] == [ids[-1]]
        # not an admin: refused, nothing imported
        r = httpx.post(f"{server.url}/api/v1/executions/import/openwebui", json={"from": db.url})
        assert r.status_code == 401
        # not Open WebUI's database (the store's own file, here): a 422 saying so, not a 500
        r = httpx.post(
            f"{server.url}/api/v1/executions/import/openwebui", json={"from": f"sqlite:///{store}"}, headers=h
        )
        assert r.status_code == 422 and "is not an Open WebUI database" in r.json()["detail"], r.text
        # a SQLite file without Open WebUI's tables: words, the driver's own go to the server's log
        other = tmp_path / "other.db"
        sqlite3.connect(other).execute("CREATE TABLE t (x)")
        r = httpx.post(
            f"{server.url}/api/v1/executions/import/openwebui", json={"from": f"sqlite:///{other}"}, headers=h
        )
        assert r.status_code == 422 and "is not an Open WebUI database" in r.json()["detail"], r.text
        assert "no such table" not in r.text, r.text


def test_through_a_server_in_open_webui_mode_with_an_admins_key(tmp_path: Path) -> None:
    """Open WebUI mode writes no admin key file: the command takes FLOWHISTORY_API_KEY (it read
    only the file, so the README's import through a running server could not work in this mode)."""
    db, _, _ = _source(tmp_path)
    key = "sk-" + "b2" * 16
    db.add_user("root", "admin", api_key=key)
    db.save_config({"version": 0, "ui": {}, "auth": {"api_key": {"enable": True}}})
    store = tmp_path / "s" / "store.duckdb"
    store.parent.mkdir()
    args = [
        "import",
        "openwebui",
        "--from",
        db.url,
        "--db",
        str(store),
        "--report",
        str(tmp_path / "r.jsonl"),
    ]
    with LiveServer(store, "import", env={"FLOWHISTORY_OPENWEBUI_DB": db.url}) as server:
        assert not (store.parent / "admin_api_key").exists()
        without = _cli(*args, "--server", server.url)
        assert without.returncode == 2 and "FLOWHISTORY_API_KEY" in without.stderr, without.stderr
        done = _cli(*args, "--server", server.url, env={"FLOWHISTORY_API_KEY": key})
        assert done.returncode == 0, done.stderr
        assert "7 stored" in " ".join(done.stdout.split())


def test_through_a_running_server_on_any_port(tmp_path: Path) -> None:
    """No `--server`: the command finds the server where it said it answers (its server.json),
    not at the settings' default port."""
    db, _, _ = _source(tmp_path)
    store, report = tmp_path / "s" / "store.duckdb", tmp_path / "report.jsonl"
    store.parent.mkdir()
    with LiveServer(store, "import") as server:
        assert not server.url.endswith(":8080")
        done = _cli("import", "openwebui", "--from", db.url, "--db", str(store), "--report", str(report))
        assert done.returncode == 0, done.stderr
        out = " ".join(done.stdout.split())
        assert f"held by the server at {server.url}" in out and "7 stored" in out


def test_no_answer_from_the_server_is_a_clear_error(tmp_path: Path) -> None:
    """The server holding the store stops answering (killed mid-import, or a wrong `--server`):
    one line saying what is kept and what to do, not a traceback."""
    db, _, _ = _source(tmp_path)
    store = tmp_path / "s" / "store.duckdb"
    store.parent.mkdir()
    with LiveServer(store, "import"):
        done = _cli(
            "import", "openwebui", "--from", db.url, "--db", str(store), "--server", "http://127.0.0.1:1"
        )
    assert done.returncode == 1
    err = " ".join(done.stderr.split())
    assert "error: no answer from the server at http://127.0.0.1:1" in err and "run the command again" in err
    assert "Traceback" not in done.stderr


def test_store_held_by_another_process_is_said_so(tmp_path: Path) -> None:
    """Another import (or any process) holding the store, no server running: the command said
    "held by a server and there is no admin key"; it says another process holds it."""
    db, _, _ = _source(tmp_path)
    store = tmp_path / "s" / "store.duckdb"
    store.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(store)!r}); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = _cli("import", "openwebui", "--from", db.url, "--db", str(store))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    err = " ".join(done.stderr.split())
    assert "another process holds the store" in err and "held by a server" not in err, err


def test_counts_through_a_running_server_are_the_whole_imports(tmp_path: Path) -> None:
    """Through a server the import runs in steps; the counts printed were the last step's
    (users 0, groups 0, flows 0 new after the first step brought them in)."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("alice", "admin")
    fid = db.add_flow("alice", nodes=[{"id": "n"}])
    n = 21_500  # two steps: a step is two chunks, the first of 1,000 runs, the next up to 20,000
    db.execute("BEGIN")
    for i in range(n):
        db.add_execution(fid, "alice", created_at=T0 + i, meta={"i": i})
    db.execute("COMMIT")
    store, report = tmp_path / "s" / "store.duckdb", tmp_path / "report.jsonl"
    store.parent.mkdir()
    with LiveServer(store, "import") as server:
        done = _cli("import", "openwebui", "--from", db.url, "--db", str(store), "--report", str(report),
                    "--server", server.url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert f"users 1, groups 0, flows 1 new; runs: {n} stored, 0 already there" in out, out


def test_the_bar_never_passes_the_total() -> None:
    """Two imports through one server both count the runs they read: the bar stops at the total."""
    from api.cli.importer import add_step

    totals: dict[str, int] = {}
    step = {"users": 1, "groups": 2, "flows": 3, "runs_read": 10, "runs_stored": 8, "runs_already_there": 2,
            "runs_skipped": 0, "runs_altered": 0, "total_read": 10, "total_in_source": 12}  # fmt: skip
    assert add_step(totals, step) == (10, 12)
    assert add_step(totals, {**step, "users": 0, "groups": 0, "flows": 0, "total_read": 20}) == (12, 12)
    assert totals == {"users": 1, "groups": 2, "flows": 3, "runs_read": 20, "runs_stored": 16,
                      "runs_already_there": 4, "runs_skipped": 0, "runs_altered": 0}  # fmt: skip


def test_a_password_in_the_sources_query_string_is_never_printed(tmp_path: Path) -> None:
    """libpq takes the password as `?password=` too: `user:pw@` was masked, that form was printed
    in the error line (and, through a server, in its 502 and its log)."""
    from analytics.openwebui.importer import redacted

    assert redacted("postgresql://u@h/db?sslmode=require&password=PW&sslpassword=K") == (
        "postgresql://u@h/db?sslmode=require&password=***&sslpassword=***"
    )
    assert redacted("postgresql://u:PW@h/db") == "postgresql://u:***@h/db"
    url = "postgresql://user@127.0.0.1:1/webui?password=PGQSECRET"
    done = _cli("import", "openwebui", "--from", url, "--db", str(tmp_path / "store.duckdb"))
    assert done.returncode != 0 and "cannot open Open WebUI's database" in done.stderr, done.stderr
    assert "PGQSECRET" not in done.stdout + done.stderr and "password=***" in done.stderr
