"""The room a backup takes, and the copies made for a CLI that never took them.

D1: a backup took about 4x the store in the backup folder (the copy's commit went whole to its
WAL, then was checkpointed into the file beside it), and a folder without that room answered the
same 507 however much was freed. Now it takes about the store's size once, and the 507 says how
much it needs and has. D2: `flowhistory backup DEST` killed (-9) after the server made its copy
and before the move to DEST left a normal, complete backup in the server's folder at each run.

Real stores, the real app (TestClient) or a real `flowhistory serve` and a real CLI process; the
small disk is a tmpfs (root only; skipped elsewhere)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from analytics.core import backup
from api.app import create_app
from tests.factories import bearer, make_execution
from tests.factories.disk import backups_on, leave_free, no_internals
from tests.live_server import FLOWHISTORY, LiveServer, server_env
from tests.test_durability import create_flow

ADMIN = bearer("admin")
MIB = 1 << 20
RUNS = 120
NEEDS = re.compile(r"needs about (\d+) MiB free there .* it has (\d+) MiB")


def _fill_store(client: TestClient) -> str:
    """About 6 MiB of data that does not compress (random text), then checkpointed."""
    fid = client.post("/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=ADMIN)
    fid = fid.json()["id"]
    for _ in range(RUNS):
        run = make_execution(fid, inputs={"prompt": os.urandom(24 << 10).hex(), "files": []})
        assert client.post(f"/api/v1/flows/{fid}/executions", json=run, headers=ADMIN).status_code == 200
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    store.on_writer(lambda c: c.execute("CHECKPOINT"))
    return str(fid)


def _peak_while(disk: Path, fn: object) -> tuple[object, int]:
    """`fn()`'s answer and the most `disk` held meanwhile (polled every 2 ms)."""
    base = _used(disk)
    peak = [base]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _used(disk))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answer = fn()  # type: ignore[operator]
    finally:
        stop.set()
        watcher.join()
    return answer, peak[0] - base


def _used(disk: Path) -> int:
    st = os.statvfs(disk)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_a_backup_takes_about_the_stores_size_once(tmp_path: Path, small_disk: Path) -> None:
    """Twice the store's size free is enough now (it took about 4x: the 507 said the disk was
    full with more than the store's size free); the disk's peak stays near the backup's size."""
    folder = small_disk / "backups"
    folder.mkdir()
    settings = backups_on(folder, tmp_path)
    with TestClient(create_app(settings)) as client:
        _fill_store(client)
        size = settings.db_path.stat().st_size
        assert 4 * MIB < size < 10 * MIB, size
        filler = leave_free(small_disk, 2 * size)
        r, peak = _peak_while(small_disk, lambda: client.post("/api/v1/admin/backup", headers=ADMIN))
        assert r.status_code == 200, r.text  # type: ignore[attr-defined]
        made = folder / r.json()["name"]  # type: ignore[attr-defined]
        assert r.json()["runs"] == RUNS  # type: ignore[attr-defined]
        assert peak <= made.stat().st_size + 2 * MIB, (peak, made.stat().st_size, size)
        assert sorted(os.listdir(folder)) == [made.name]  # no WAL, no scratch file left
        filler.unlink()


def test_a_full_backup_folder_says_how_much_room_the_backup_needs(tmp_path: Path, small_disk: Path) -> None:
    """The 507 names the room a backup needs (about the store's size) and what the folder has; an
    operator who frees that much gets the backup, the store untouched and writing meanwhile."""
    folder = small_disk / "backups"
    folder.mkdir()
    settings = backups_on(folder, tmp_path)
    with TestClient(create_app(settings)) as client:
        fid = _fill_store(client)
        size = settings.db_path.stat().st_size
        filler = leave_free(small_disk, size // 2)
        r = client.post("/api/v1/admin/backup", headers=ADMIN)
        assert r.status_code == 507, r.text
        detail = r.json()["detail"]
        assert detail.startswith("the backup folder's disk is full"), detail
        no_internals(r.text, small_disk)
        found = NEEDS.search(detail)
        assert found, detail
        need, has = int(found.group(1)), int(found.group(2))
        assert size / MIB - 1 <= need <= size / MIB + 2, (need, size)
        assert abs(has - (size // 2) / MIB) <= 1, (has, size)
        assert os.listdir(folder) == []
        store = client.app.state.ctx.store  # type: ignore[attr-defined]
        assert not store.full
        r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=ADMIN)
        assert r.status_code == 200, r.text
        filler.unlink()
        leave_free(small_disk, need * MIB)  # what the answer asked for, and no more
        r = client.post("/api/v1/admin/backup", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["runs"] == RUNS + 1


# The real CLI, killed (-9) right after the server answered and before it moved the file to DEST:
# its own code up to there, `place_backup` replaced by the kill.
KILLED_BEFORE_THE_MOVE = """
import os, signal, sys
from api.cli import app
from analytics.core import backup
backup.place_backup = lambda made, dest: os.kill(os.getpid(), signal.SIGKILL)
app(args=sys.argv[1:], prog_name="flowhistory")
"""


def _cli(server: LiveServer, *args: str, killed: bool = False) -> subprocess.CompletedProcess[str]:
    head = [sys.executable, "-c", KILLED_BEFORE_THE_MOVE] if killed else [FLOWHISTORY]
    return subprocess.run(
        [*head, "backup", *args, "--db", str(server.db)],
        env=server_env() | {"FLOWHISTORY_PORT": str(server.port)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_cli_backup_killed_before_the_move_leaves_no_backup_behind(tmp_path: Path) -> None:
    db = tmp_path / "data" / "store.duckdb"
    db.parent.mkdir()
    folder = db.parent / "backups"
    server = LiveServer(db, "backup").start()
    try:
        create_flow(server.url)
        for n in range(3):
            out = _cli(server, str(tmp_path / f"never-{n}.duckdb"), killed=True)
            assert out.returncode == -9, out.stdout + out.stderr
            assert not (tmp_path / f"never-{n}.duckdb").exists()
            plain = [p for p in os.listdir(folder) if p.startswith("flowhistory-")]
            assert plain == [], f"the killed CLI's copy stays as a backup: {plain}"
            assert any(".uncollected-" in p for p in os.listdir(folder))
        admins = _backup_by_admin(server)  # an admin's backup: plain name, kept
        done = _cli(server, str(tmp_path / "taken.duckdb"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "taken.duckdb").is_file()
        assert os.listdir(folder) == [admins], "the uncollected copies did not go at the next backup"
        assert _cli(server, str(tmp_path / "again.duckdb"), killed=True).returncode == -9
        assert server.stop() == 0
        server.start()  # and at server start
        assert os.listdir(folder) == [admins]
        assert server.stop() == 0
    finally:
        server.kill()


def _backup_by_admin(server: LiveServer) -> str:
    key = (server.db.parent / "admin_api_key").read_text().strip()
    r = httpx.post(
        f"{server.url}/api/v1/admin/backup", headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    assert r.status_code == 200, r.text
    name = str(r.json()["name"])
    assert name.startswith("flowhistory-") and name.endswith(".duckdb")
    return name


def test_a_copy_is_hidden_only_while_a_cli_holds_its_marker(tmp_path: Path) -> None:
    """A token whose marker is not in the folder (a CLI on another machine) gets a plain name,
    kept; one held gets the hidden name, kept while held (a CLI at work), removed once released;
    a copy the CLI could not move is given its plain name (then kept)."""
    settings = backups_on(tmp_path / "backups", tmp_path)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/admin/backup", params={"collect": "ab" * 16}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["name"].startswith("flowhistory-"), r.text
        remote = r.json()["name"]
        assert (
            client.post("/api/v1/admin/backup", params={"collect": "../x"}, headers=ADMIN).status_code == 422
        )
        with backup.collecting(settings.backups_dir) as claim:
            assert claim is not None
            r = client.post("/api/v1/admin/backup", params={"collect": claim.token}, headers=ADMIN)
            assert r.status_code == 200, r.text
            hidden = r.json()["name"]
            assert hidden.startswith(".flowhistory-") and hidden.endswith(f".uncollected-{claim.token}")
            assert client.post("/api/v1/admin/backup", headers=ADMIN).status_code == 200
            assert hidden in os.listdir(settings.backups_dir)  # a CLI at work: kept
            kept = backup.keep(settings.backups_dir / hidden)  # the move to DEST failed
            assert kept.name.startswith("flowhistory-") and kept.is_file()
        with backup.collecting(settings.backups_dir) as claim:
            assert claim is not None
            r = client.post("/api/v1/admin/backup", params={"collect": claim.token}, headers=ADMIN)
            hidden = r.json()["name"]
        assert client.post("/api/v1/admin/backup", headers=ADMIN).status_code == 200
        left = os.listdir(settings.backups_dir)
        assert hidden not in left and remote in left and kept.name in left
        assert not [p for p in left if p.startswith(".")], left
