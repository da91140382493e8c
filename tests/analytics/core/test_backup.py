"""Backup and restore of the store file (analytics/core/backup.py), compared against the source
store table by table, and what a restore refuses (the store left byte for byte as it was)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analytics.core import backup, migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import Conflict, InvalidInput
from analytics.core.store import Store
from api.app import create_app
from api.cli import app as cli
from tests.factories import SECRET, World, bearer, make_execution, save_run, store_contents
from tests.factories.disk import backups_on, fill, no_internals

ADMIN = bearer("admin")
CLI_ENV = {"WEBUI_SECRET_KEY": SECRET, "COLUMNS": "200", "NO_COLOR": "1"}


def dump_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with open_context(Settings(db_path=path, webui_secret_key=SECRET), migrate=False) as ctx:
        assert ctx.store.read(migrations.version) == migrations.head()
        return ctx.store.read(store_contents)


def test_a_backup_holds_every_row_of_every_table(world: World, tmp_path: Path) -> None:
    ids = [save_run(world, world.shared, text=f"run {i}") for i in range(25)]
    dest = tmp_path / "out" / "copy.duckdb"
    dest.parent.mkdir()
    done = backup.backup(world.ctx, dest)
    assert done.runs == len(ids) and done.path == dest and done.bytes == dest.stat().st_size
    assert done.schema_version == migrations.head()
    source = world.ctx.store.read(store_contents)
    assert sorted(done.tables) == sorted(f"main.{t}" for t in source)
    assert {t: len(rows) for t, rows in source.items()} == {
        t.split(".", 1)[1]: n for t, n in done.tables.items()
    }
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.duckdb"], "a scratch file was left"
    assert dump_file(dest) == source


def test_a_backup_never_overwrites(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "taken.duckdb"
    dest.write_bytes(b"mine")
    with pytest.raises(Conflict):
        backup.backup(world.ctx, dest)
    assert dest.read_bytes() == b"mine"
    with pytest.raises(InvalidInput):
        backup.backup(world.ctx, tmp_path / "no" / "such" / "folder.duckdb")


def test_the_admin_folder_backup_gets_a_generated_name(world: World) -> None:
    done = backup.backup_to_folder(world.ctx)
    assert done.path.parent == world.ctx.settings.backups_dir
    assert done.path.name.startswith("flowhistory-") and done.path.suffix == ".duckdb"


def test_restore_puts_the_backup_in_place_and_keeps_the_old_store(world: World, tmp_path: Path) -> None:
    for i in range(7):
        save_run(world, world.public, text=f"kept {i}")
    source = world.ctx.store.read(store_contents)
    bak = tmp_path / "b.duckdb"
    backup.backup(world.ctx, bak)

    db = tmp_path / "other" / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as other:
        before = other.store.read(store_contents)
    assert before != source

    done = backup.restore(bak, db)
    assert done.runs == 7 and done.previous is not None and done.previous.parent == db.parent
    assert done.previous.name.startswith("store.duckdb.before-restore-")
    assert dump_file(db) == source
    assert dump_file(done.previous) == before, "the replaced store must be kept as it was"
    # a restore into a folder without a store: nothing to keep
    fresh = backup.restore(bak, tmp_path / "new" / "store.duckdb")
    assert fresh.previous is None and dump_file(fresh.db_path) == source


def test_a_store_path_that_cannot_be_written_is_not_blamed_on_the_backup(
    world: World, tmp_path: Path
) -> None:
    """`restore good.duckdb --db /proc/fh.duckdb` said the backup "is damaged or not a whole
    store": an operator could throw a good backup away."""
    good = tmp_path / "good.duckdb"
    backup.backup(world.ctx, good)
    with pytest.raises(InvalidInput) as err:
        backup.restore(good, Path("/proc/fh.duckdb"))
    assert "the backup is fine" in err.value.detail and "damaged" not in err.value.detail
    assert err.value.field == "db"


@pytest.mark.parametrize("kind", ["missing", "empty", "junk", "truncated", "not-flowhistory"])
def test_restore_refuses_what_is_not_a_whole_store(world: World, tmp_path: Path, kind: str) -> None:
    save_run(world, world.public)
    good = tmp_path / "good.duckdb"
    backup.backup(world.ctx, good)
    bad = tmp_path / "bad.duckdb"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "junk":
        bad.write_bytes(b"PK\x03\x04 not a database" * 1000)
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "not-flowhistory":
        with Store(bad) as s:
            s.write(lambda c: c.execute("CREATE TABLE t AS SELECT 1 AS x"))

    db = tmp_path / "live" / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)):
        pass
    bytes_before = db.read_bytes()
    with pytest.raises(InvalidInput) as refused:
        backup.restore(bad, db)
    assert str(bad) in refused.value.detail or "flowhistory store" in refused.value.detail
    assert db.read_bytes() == bytes_before, "a refused restore changed the store"
    left = sorted(p.name for p in db.parent.iterdir())
    assert left in (["store.duckdb"], ["store.duckdb", "store.duckdb.reserve"]), "a scratch file was left"


def test_a_failed_checkpoint_at_close_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """DuckDB's own checkpoint failure (its debug abort flag): logged, and the WAL still holds
    the commit, replayed at the next open."""
    path = tmp_path / "s.duckdb"
    store = Store(path)
    store.write(lambda c: c.execute("CREATE TABLE t AS SELECT 41 AS x"))
    store.on_writer(lambda c: c.execute("SET debug_checkpoint_abort = 'before_header'"))
    with caplog.at_level(logging.ERROR, logger="analytics.core.store"):
        store.close()
    assert any("checkpoint at close failed" in r.getMessage() for r in caplog.records), caplog.text
    with Store(path) as again:
        assert again.read(lambda c: c.execute("SELECT x FROM t").fetchall()) == [(41,)]


def test_a_backup_folder_on_a_full_disk_answers_507_and_leaves_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    """The backup folder on a disk of its own, full: 507 saying so (no path, no DuckDB text), no
    partial file left, the store untouched (not in its full mode), writes and a later backup work;
    the CLI says the same in one line."""
    folder = small_disk / "backups"
    settings = backups_on(folder, tmp_path)
    with TestClient(create_app(settings)) as client:
        fid = client.post("/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=ADMIN)
        fid = fid.json()["id"]
        for _ in range(20):
            r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=ADMIN)
            assert r.status_code == 200
        folder.mkdir()
        filler = fill(small_disk)
        r = client.post("/api/v1/admin/backup", headers=ADMIN)
        assert r.status_code == 507, r.text
        assert r.json()["detail"].startswith("the backup folder's disk is full")
        no_internals(r.text, small_disk)
        assert os.listdir(folder) == []
        store = client.app.state.ctx.store  # type: ignore[attr-defined]
        assert not store.full and (tmp_path / "store.duckdb.reserve").exists()
        r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=ADMIN)
        assert r.status_code == 200, r.text
        filler.unlink()
        r = client.post("/api/v1/admin/backup", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["runs"] == 21
    # the CLI, without a server, into a folder on the full disk
    filler = fill(small_disk)
    out = CliRunner().invoke(
        cli, ["backup", str(small_disk / "copy.duckdb"), "--db", str(settings.db_path)], env=CLI_ENV
    )
    assert out.exit_code == 1, out.output
    assert out.output.count("\n") == 1 and "the backup folder's disk is full" in out.output
    assert "Traceback" not in out.output and "duckdb" not in out.output.lower()
    filler.unlink()


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    return int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout)


def test_partials_a_killed_backup_left_are_removed_at_start_and_before_a_backup(tmp_path: Path) -> None:
    """kill -9 during a backup leaves `.flowhistory-….duckdb.partial-<pid>-<hex>` (and its WAL,
    store-sized): those of processes that are gone go at server start and before each backup;
    a running process's (another server's backup in a shared folder) stay, as do other files."""
    settings = Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, scheduler_enabled=False
    )
    folder = settings.backups_dir
    folder.mkdir(parents=True)
    dead = _dead_pid()
    alive = os.getppid()

    def leftovers(pid: int, tag: str) -> list[Path]:
        made = [
            folder / f".flowhistory-{tag}.duckdb.partial-{pid}-0a1b2c3d",
            folder / f".flowhistory-{tag}.duckdb.partial-{pid}-0a1b2c3d.wal",
        ]
        for p in made:
            p.write_bytes(b"x" * 1000)
        return made

    stale = leftovers(dead, "1")
    own = leftovers(os.getpid(), "2")  # a container's server has the same pid at each start
    running = leftovers(alive, "3")
    mine = folder / "flowhistory-20240101T000000Z-abcdef.duckdb"
    mine.write_bytes(b"a finished backup")
    with TestClient(create_app(settings)) as client:
        assert not any(p.exists() for p in stale + own)
        assert all(p.exists() for p in running) and mine.exists()
        stale = leftovers(dead, "4")  # a crash of another process while this one serves
        r = client.post("/api/v1/admin/backup", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in running) and mine.exists()


def test_a_restore_cut_short_before_the_copy_is_renamed_in_leaves_the_store_where_it_was(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old store was renamed away first, then the copy in: killed between the two, there was
    no store at the path, and the next `serve` made an empty one (a new admin key with it)."""
    save_run(world, world.public, text="in the backup")
    bak = tmp_path / "b.duckdb"
    backup.backup(world.ctx, bak)
    db = tmp_path / "other" / "store.duckdb"
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as other:
        before = other.store.read(store_contents)
    replace = os.replace

    def killed(src: Any, dst: Any) -> None:
        if Path(dst) == db:
            raise KeyboardInterrupt  # the process dies here
        replace(src, dst)

    monkeypatch.setattr(backup.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        backup.restore(bak, db)
    monkeypatch.undo()
    assert dump_file(db) == before  # the old store, still at its path
    copies = list(db.parent.glob(".store.duckdb.restoring-*"))
    assert copies  # the killed restore's copy of the backup, as large as the store
    done = backup.restore(bak, db)  # and the restore, run again, goes through
    assert dump_file(db) != before and dump_file(done.previous) == before  # type: ignore[arg-type]
    assert not list(db.parent.glob(".store.duckdb.restoring-*"))  # the killed one's copy went too


def test_a_killed_restores_copy_beside_the_store_is_removed_when_the_server_starts(tmp_path: Path) -> None:
    settings = Settings(
        db_path=tmp_path / "data" / "store.duckdb", webui_secret_key=SECRET, port=0, scheduler_enabled=False
    )
    settings.db_path.parent.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    stale = [
        settings.db_path.with_name(f".store.duckdb.restoring-{dead}-0a1b2c3d{wal}") for wal in ("", ".wal")
    ]
    running = settings.db_path.with_name(f".store.duckdb.restoring-{alive}-0a1b2c3d")  # a restore at work
    for p in (*stale, running):
        p.write_bytes(b"x" * 1000)
    with TestClient(create_app(settings)):
        assert not any(p.exists() for p in stale)
        assert running.exists() and settings.db_path.exists()


def test_a_backup_moved_to_another_full_disk_leaves_no_partial_file(tmp_path: Path, small_disk: Path) -> None:
    """The CLI's backup through a server is written in the server's folder, then moved to DEST:
    to another filesystem that was a copy straight under DEST, left truncated by a full disk."""
    made = tmp_path / "made.duckdb"
    made.write_bytes(os.urandom(32 << 20))  # more than the 24 MiB disk holds
    dest = small_disk / "copy.duckdb"
    with pytest.raises(OSError):
        backup.place_backup(made, dest)
    assert os.listdir(small_disk) == [] and made.exists()  # nothing under DEST, the backup kept
    made.write_bytes(b"x" * 1000)
    backup.place_backup(made, dest)
    assert dest.read_bytes() == b"x" * 1000 and not made.exists()
    made.write_bytes(b"y")
    with pytest.raises(Conflict):  # never over an existing file
        backup.place_backup(made, dest)
    same = tmp_path / "same-disk.duckdb"
    backup.place_backup(made, same)
    assert same.read_bytes() == b"y" and not made.exists()
