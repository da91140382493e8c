"""Backup and restore of the store file (analytics/core/backup.py), compared against the source
store table by table, and what a restore refuses (the store left byte for byte as it was)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from analytics.core import backup, migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import Conflict, InvalidInput
from analytics.core.store import Store
from tests.factories import SECRET, World, save_run, store_contents


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
