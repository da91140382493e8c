"""A full disk (issue 13 item 5): a real store on a small tmpfs, filled until writes fail.

Writes answer a JSON 507 without paths or DuckDB's text (a batch's verdicts too), reads keep
working, an admin can delete while full, writes resume once there is room again without a
restart, and every acknowledged run is still there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from analytics.core import readiness
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import NotReady, StorageFull, StoreUnopenable
from analytics.core.store import Connection, Store
from analytics.retention import reclaim_space
from api.app import create_app
from tests.factories import SECRET, bearer, make_execution
from tests.factories.disk import fill, leave_free, no_internals

ADMIN = bearer("admin")


def test_full_disk_answers_507_keeps_reads_and_lets_admins_delete(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        db_path=small_disk / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        scheduler_enabled=False,
        disk_reserve="2MiB",
    )
    with TestClient(create_app(settings)) as client:
        flow = client.post(
            "/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=ADMIN
        )
        fid = flow.json()["id"]
        acked = []
        for i in range(20):  # a WAL a checkpoint cannot fold in within the 2 MiB reserve
            text = "".join(hashlib.sha256(f"{i}-{k}".encode()).hexdigest() for k in range(20))
            r = client.post(
                f"/api/v1/flows/{fid}/executions", json=make_execution(fid, text=text), headers=ADMIN
            )
            assert r.status_code == 200
            acked.append(r.json()["id"])
        assert (small_disk / "store.duckdb.reserve").stat().st_size == 2 << 20
        filler = fill(small_disk)

        caplog.set_level(logging.ERROR)
        for _ in range(3):  # the first fails in DuckDB, the next are refused before trying
            r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=ADMIN)
            assert r.status_code == 507, r.text
            assert r.json()["detail"].startswith("the store's disk is full: this write was not stored")
            no_internals(r.text, small_disk)
        assert not (small_disk / "store.duckdb.reserve").exists()  # released for the deletes
        assert any("disk is full" in m for m in caplog.messages)

        batch = client.post(
            "/api/v1/executions/batch", json=[make_execution(fid) for _ in range(3)], headers=ADMIN
        )
        assert batch.status_code == 200
        items = batch.json()["items"]
        assert [i["status"] for i in items] == ["refused"] * 3
        assert all(i["detail"].startswith("the store's disk is full") for i in items)
        no_internals(batch.text, small_disk)

        # reads keep working, and see exactly the acknowledged runs
        listed = client.get(f"/api/v1/flows/{fid}/executions", headers=ADMIN).json()
        assert sorted(r["id"] for r in listed) == sorted(acked)
        assert client.get(f"/api/v1/flows/{fid}/executions/{acked[0]}", headers=ADMIN).status_code == 200
        assert (
            client.get(f"/api/v1/flows/{fid}/executions/stats", headers=ADMIN).json()["total_executions"]
            == 20
        )
        count = client.post("/api/v1/executions/count", json={}, headers=ADMIN)
        assert count.status_code == 200, count.text
        found = client.post("/api/v1/executions/search", json={"limit": 100}, headers=ADMIN)
        assert found.status_code == 200, found.text
        assert len(found.json()["items"]) == 20

        # an admin frees space while full
        gone = client.delete(f"/api/v1/flows/{fid}/executions/{acked[0]}", headers=ADMIN)
        assert gone.status_code == 200, gone.text

        # room again (the operator cleared the disk): writes resume without a restart
        filler.unlink()
        r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=ADMIN)
        assert r.status_code == 200, r.text
        acked.append(r.json()["id"])
        assert (small_disk / "store.duckdb.reserve").stat().st_size == 2 << 20
    # nothing acknowledged is lost, also after a close and reopen from the file
    with Store(settings.db_path, read_only=True) as store:
        ids = store.read(lambda c: [str(r[0]) for r in c.execute("SELECT id FROM executions").fetchall()])
    assert sorted(ids) == sorted(acked[1:])


def test_a_failed_checkpoint_at_close_is_logged_and_loses_nothing(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_disk / "s.duckdb"
    store = Store(path)
    store.write(lambda c: c.execute("CREATE TABLE t (i INT, s VARCHAR)"))
    store.write(lambda c: c.execute("INSERT INTO t SELECT range, repeat('x', 100) FROM range(20000)"))
    filler = fill(small_disk)
    with caplog.at_level(logging.ERROR):
        store.close()
    assert any("checkpoint at close" in m for m in caplog.messages), caplog.messages
    filler.unlink()
    with Store(path, read_only=True) as again:  # the WAL is replayed
        assert again.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()[0][0]) == 20000


def test_a_delete_on_a_full_disk_never_invalidates_the_store(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkpoint after a delete on a full disk has no room (the WAL outgrows the reserve):
    it is skipped, not run into DuckDB's fatal error that invalidates the database."""
    path = small_disk / "s.duckdb"
    rows = "SELECT range, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) || md5((range + 2)::VARCHAR) FROM range"
    store = Store(path, reserve_bytes=1 << 20)
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        for start in range(0, 60000, 600):  # ~7 MiB of WAL: each commit small enough for the WAL
            store.write(lambda c, a=start: c.execute(f"INSERT INTO t {rows}({a}, {a + 600})"))
        filler = fill(small_disk)
        caplog.set_level(logging.ERROR)
        with pytest.raises(StorageFull):
            store.write(lambda c: c.execute(f"INSERT INTO t {rows}(60000, 60600)"))
        assert store.full
        store.write(lambda c: c.execute("DELETE FROM t WHERE i < 1000"), frees_space=True)  # acknowledged
        count = "SELECT count(*), sum(i) FROM t"
        expected = (59000, sum(range(1000, 60000)))
        assert store.read(lambda c: c.execute(count).fetchall()[0]) == expected  # reads keep working
        assert not any("invalidated" in m for m in caplog.messages), caplog.messages
        filler.unlink()  # room again: writes resume, and the skipped checkpoint runs
        store.write(lambda c: c.execute("INSERT INTO t VALUES (-1, 'after')"))
        assert store.read(lambda c: c.execute(count).fetchall()[0]) == (59001, expected[1] - 1)
    finally:
        store.close()
    assert not any("invalidated" in m for m in caplog.messages), caplog.messages
    with Store(path, read_only=True) as again:  # every acknowledged write, from the file
        assert again.read(lambda c: c.execute(count).fetchall()[0]) == (59001, expected[1] - 1)


def test_a_fatal_checkpoint_is_recovered_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Should DuckDB invalidate the database anyway (its debug flag makes a checkpoint fatal),
    the writer reopens it from the file and WAL: reads and writes go on, nothing is lost."""
    path = tmp_path / "s.duckdb"
    store = Store(path, checkpoint_threshold="1KB")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)"))
        store.on_writer(lambda c: c.execute("SET debug_checkpoint_abort = 'before_header'"))
        caplog.set_level(logging.ERROR)
        store.write(lambda c: c.execute("INSERT INTO t SELECT range FROM range(10, 5000)"))  # past 1KB
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(5000,)]
        store.write(lambda c: c.execute("INSERT INTO t VALUES (5000)"))
        assert store.read(lambda c: c.execute("SELECT count(*), sum(i) FROM t").fetchall()) == [
            (5001, sum(range(5001)))
        ]
        assert any("reopened" in m for m in caplog.messages), caplog.messages
    finally:
        store.close()
    with Store(path, read_only=True) as again:
        assert again.read(lambda c: c.execute("SELECT count(*), sum(i) FROM t").fetchall()) == [
            (5001, sum(range(5001)))
        ]


def test_compaction_checkpoint_is_skipped_without_room(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retention's compaction checkpoints on its own: on a full disk it must take the store's
    measure of room first, not run into the fatal error that invalidates the database."""
    settings = Settings(db_path=small_disk / "s.duckdb", scheduler_enabled=False, disk_reserve="1MiB")
    ctx = open_context(settings)
    try:
        ctx.store.write(
            lambda c: c.execute(
                "CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(50000)"
            )
        )
        filler = fill(small_disk)
        caplog.set_level(logging.WARNING)
        assert reclaim_space.checkpoint(ctx, wait_s=0.1) is False
        assert any("checkpoint after compaction skipped" in m for m in caplog.messages), caplog.messages
        assert not any("invalidated" in m for m in caplog.messages), caplog.messages
        assert ctx.store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(50000,)]
        filler.unlink()
        assert reclaim_space.checkpoint(ctx, wait_s=5) is True  # room again: it runs
    finally:
        ctx.close()


def test_a_read_right_after_the_database_is_invalidated_waits_for_the_reopen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fatal checkpoint can land between a commit's acknowledgement and the writer's check:
    the next read must not fail on the dead database, it waits for the reopen and runs there."""
    path = tmp_path / "s.duckdb"
    store = Store(path)
    try:
        store.write(lambda c: c.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)"))
        store.write(lambda c: c.execute("INSERT INTO t SELECT range FROM range(10, 100)"))  # a WAL to fold in

        def fatal_checkpoint(c: Connection) -> None:
            c.execute("SET debug_checkpoint_abort = 'before_header'")
            c.execute("CHECKPOINT")

        caplog.set_level(logging.ERROR)
        with pytest.raises(Exception, match=r"(?i)fatal|invalidated"):
            store.read(fatal_checkpoint)
        assert store.read(lambda c: c.execute("SELECT count(*), sum(i) FROM t").fetchall()) == [
            (100, sum(range(100)))
        ]
        store.write(lambda c: c.execute("INSERT INTO t VALUES (100)"))
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(101,)]
    finally:
        store.close()


ELSEWHERE_FULL = (
    'IO Error: Could not write file "/elsewhere/arch/_staging/x.parquet": No space left on device'
)


def test_no_room_for_a_file_a_task_writes_elsewhere_is_that_tasks_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A retention pass streams its runs to an archive folder on a disk of its own: that disk being
    full is the pass's failure. Never the store's full mode (reserve released, the delete
    retried in its room, over and over), and the result it left open does not block the writer."""
    store = Store(tmp_path / "s.duckdb", reserve_bytes=1 << 20)
    kept: list[object] = []
    calls = 0

    def archive_then_delete(c: Connection) -> None:
        nonlocal calls
        calls += 1
        reader = c.sql("SELECT range AS i FROM range(100000)").to_arrow_reader()
        kept.append(reader)  # held, as an exception's traceback holds the frame that opened it
        raise duckdb.IOException(ELSEWHERE_FULL)

    try:
        store.write(lambda c: c.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)"))
        caplog.set_level(logging.WARNING)
        for frees_space in (True, False):
            with pytest.raises(duckdb.IOException, match="elsewhere"):
                store.write(archive_then_delete, frees_space=frees_space)
        assert calls == 2  # each tried once, no retries
        assert not store.full
        assert (tmp_path / "s.duckdb.reserve").stat().st_size == 1 << 20
        assert not any("store's disk is full" in m for m in caplog.messages), caplog.messages
        assert store.stats.refused_full == 0 and store.stats.failed_tasks == 2
        # the writer's connection is clean: writes, deletes and exclusive tasks go on
        store.write(lambda c: c.execute("INSERT INTO t VALUES (10)"))
        store.write(lambda c: c.execute("DELETE FROM t WHERE i = 0"), frees_space=True)
        assert store.on_writer(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(10,)]
        assert store.writer_state == "alive" and not store.unwritable
    finally:
        store.close()


def test_a_result_a_failed_task_left_open_never_blocks_the_writer(tmp_path: Path) -> None:
    """Whatever a write, an after-commit hook or an exclusive task raised, the next write commits
    (before, every later statement failed with "connection has an open result")."""
    store = Store(tmp_path / "s.duckdb")
    kept: list[object] = []

    def leave_open(c: Connection) -> None:
        kept.append(c.sql("SELECT range FROM range(100000)").to_arrow_reader())
        raise ValueError("the task failed")

    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i INT)"))
        with pytest.raises(ValueError):
            store.write(leave_open)
        store.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        with pytest.raises(ValueError):
            store.on_writer(leave_open)
        store.write(lambda c: c.execute("INSERT INTO t VALUES (2)"))
        # a hook that fails with a result open on the writer's connection (write_now's)
        store.write(
            lambda c: c.execute("INSERT INTO t VALUES (3)"),
            after_commit=lambda _: store.write_now(leave_open),
        )
        store.write(lambda c: c.execute("INSERT INTO t VALUES (4)"))
        assert store.read(lambda c: c.execute("SELECT sum(i) FROM t").fetchall()) == [(10,)]
        assert store.writer_state == "alive"
    finally:
        store.close()


def test_refusals_on_a_full_disk_are_counted(small_disk: Path) -> None:
    """`flowhistory_store_write_failures_total` counted none of the 507s: the first write that
    finds the disk full and those refused after it are failures, and refusals by reason."""
    store = Store(small_disk / "s.duckdb", reserve_bytes=1 << 20)
    rows = "SELECT range, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) FROM range"
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        fill(small_disk)
        with pytest.raises(StorageFull):
            store.write(lambda c: c.execute(f"INSERT INTO t {rows}(0, 100000)"))
        assert store.full
        for _ in range(2):
            with pytest.raises(StorageFull):
                store.write(lambda c: c.execute("INSERT INTO t VALUES (1, 'x')"))
        assert store.stats.failed_tasks == 3 and store.stats.refused_full == 3
    finally:
        store.close()


def test_the_writer_says_when_it_cannot_commit(tmp_path: Path) -> None:
    """/ready said "writer alive" while every write failed: it says the writer cannot commit."""
    settings = Settings(db_path=tmp_path / "s.duckdb", scheduler_enabled=False, disk_reserve="0")
    ctx = open_context(settings)
    try:
        assert readiness.parts(ctx)["ready"]
        ctx.store._root.close()  # the connection under the writer is gone, and no new one comes
        with pytest.raises(duckdb.Error):
            ctx.store.write(lambda c: c.execute("SELECT 1"))
        assert ctx.store.writer_state.startswith("cannot commit")
        with pytest.raises(NotReady, match="writer cannot commit"):
            readiness.check(ctx)
    finally:
        with contextlib.suppress(Exception):
            ctx.close()


def test_a_reserve_missing_at_start_is_made_once_the_disk_has_room(small_disk: Path) -> None:
    Store(small_disk / "s.duckdb").close()
    filler = leave_free(small_disk, 1 << 20)  # no room for a 2 MiB reserve
    store = Store(small_disk / "s.duckdb", reserve_bytes=2 << 20)
    try:
        store.RESERVE_CHECK_S = 0.0
        assert not (small_disk / "s.duckdb.reserve").exists()
        filler.unlink()
        store.write(lambda c: c.execute("CREATE TABLE t (i INT)"))
        # a write is answered before its commit's after-work (the reserve) runs; the writer
        # takes the next write only once that is done
        store.write(lambda c: c.execute("SELECT 1"))
        assert (small_disk / "s.duckdb.reserve").stat().st_size == 2 << 20
    finally:
        store.close()


def test_a_delete_ends_full_mode_only_with_room_for_the_reserve_again(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The tester saw writes resume ("a delete freed room") with 57 KB free and no reserve. Writes
    resume after a delete once its checkpoint ran and the reserve is made again, else when the
    disk has twice the reserve free; and the reserve is then there for the next full disk."""
    path = small_disk / "s.duckdb"
    rows = "SELECT range, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) FROM range"
    store = Store(path, reserve_bytes=2 << 20)
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        store.write(lambda c: c.execute(f"INSERT INTO t {rows}(0, 20000)"))
        filler = fill(small_disk)
        with pytest.raises(StorageFull):
            store.write(lambda c: c.execute(f"INSERT INTO t {rows}(20000, 40000)"))
        assert store.full and not (path.with_name("s.duckdb.reserve")).exists()
        # the released reserve is nearly all taken again (outside the store): 256 KiB left
        more = leave_free(small_disk, 256 << 10, "more")
        caplog.set_level(logging.WARNING)
        store.write(lambda c: c.execute("DELETE FROM t WHERE i < 100"), frees_space=True)  # runs
        assert store.full, "writes resumed with no room for the reserve"
        assert not any("a delete freed room" in m for m in caplog.messages)
        with pytest.raises(StorageFull):
            store.write(lambda c: c.execute("INSERT INTO t VALUES (-1, 'x')"))
        filler.unlink()
        more.unlink()
        store.write(lambda c: c.execute("INSERT INTO t VALUES (-1, 'x')"))  # room again: resumes
        assert not store.full
        assert path.with_name("s.duckdb.reserve").stat().st_size == 2 << 20
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(19901,)]
    finally:
        store.close()


def test_a_full_disk_whose_wal_cannot_be_folded_says_deletes_will_not_help(small_disk: Path) -> None:
    """Checkpoints skipped for room let the WAL grow until it filled the disk; deleting runs then
    adds to the WAL and frees nothing, yet the 507 said deletes would bring writes back."""
    path = small_disk / "s.duckdb"
    rows = "SELECT range, repeat(md5(range::VARCHAR), 8) FROM range"
    store = Store(path, reserve_bytes=4 << 20, checkpoint_threshold="4MB")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        start = 0
        with pytest.raises(StorageFull):
            for _ in range(200):  # until the disk is full: the WAL took it, checkpoints skipped
                store.write(lambda c, a=start: c.execute(f"INSERT INTO t {rows}({a}, {a + 5000})"))
                start += 5000
        store.write(lambda c: c.execute("DELETE FROM t"), frees_space=True)  # every row
        assert store.full  # the checkpoint that would free their room needs twice the WAL
        with pytest.raises(StorageFull) as refused:
            store.write(lambda c: c.execute("INSERT INTO t VALUES (-1, 'x')"))
        assert "Deleting runs cannot free room now" in refused.value.detail
        assert "free room on the disk itself" in refused.value.detail
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(0,)]
    finally:
        store.close()


def test_a_first_start_on_a_full_disk_leaves_no_empty_file_behind(small_disk: Path) -> None:
    """The empty file a failed first start left was refused by every later start ("not a valid
    DuckDB database file") until an operator removed it by hand."""
    path = small_disk / "s.duckdb"
    filler = fill(small_disk)
    with pytest.raises(StoreUnopenable, match="No space left"):
        Store(path)
    assert not path.exists()
    filler.unlink()
    Store(path).close()  # space back: a store starts


def test_a_retention_pass_on_a_full_disk_says_what_it_did_when_its_compaction_cannot(
    small_disk: Path,
) -> None:
    """The pass committed (600 runs deleted and archived), then its compaction found no room:
    the caller got a 507 "this write was not stored", as if nothing had been deleted."""
    from analytics.history import ingest
    from analytics.retention import apply, policies
    from analytics.retention.policies import Policy
    from tests.factories.retention import ADMIN, NOW, generate, make_flows

    settings = Settings(db_path=small_disk / "s.duckdb", scheduler_enabled=False, disk_reserve="1MiB")
    with open_context(settings) as ctx:
        flow = make_flows(ctx, ["f"])["f"]
        generate(ctx, [flow], 300)
        policies.set_policy(ctx, ADMIN, Policy(max_age_days=50))
        fill(small_disk)
        refused = ingest.save_executions(ctx, ADMIN, [make_execution(flow) for _ in range(50)])
        assert {r.status for r in refused} == {"refused"} and ctx.store.full
        out = apply.run_retention(ctx, now=NOW, compact=True)
        assert out["deleted"] > 0 and "error" in out["compaction"], out["compaction"]
        left = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall())[0][0]
        assert left == 300 - out["deleted"]


def test_writes_resume_once_the_reserve_fits_again_as_at_a_start(small_disk: Path) -> None:
    """Writes resumed only with twice the reserve free: a 120 MiB disk with 117 MiB free (a 64
    MiB reserve) refused every write until a restart, which then took writes with 51 MiB free."""
    path = small_disk / "s.duckdb"
    store = Store(path, reserve_bytes=8 << 20)
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        filler = fill(small_disk)
        with pytest.raises(StorageFull):
            store.write(
                lambda c: c.execute("INSERT INTO t SELECT range, repeat('x', 500) FROM range(100000)")
            )
        assert store.full
        filler.unlink()
        # 14 MiB free: the reserve (8) and its margin (4) fit, twice the reserve (16) does not
        leave_free(small_disk, 14 << 20)
        store.write(lambda c: c.execute("INSERT INTO t VALUES (1, 'x')"))
        assert not store.full and path.with_name("s.duckdb.reserve").stat().st_size == 8 << 20
    finally:
        store.close()


def test_a_read_only_store_folder_refuses_writes_in_words_and_they_resume(small_disk: Path) -> None:
    """The data folder remounted read-only: every write was a 500 "internal error", and once a
    checkpoint failed the store was dead for good (its reopen failed, never tried again) even
    after the folder could be written again."""
    from analytics.core.errors import StoreUnwritable

    data = small_disk / "data"
    data.mkdir()
    path = data / "s.duckdb"
    store = Store(path, checkpoint_threshold="64KB")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT, s VARCHAR)"))
        store.write(lambda c: c.execute("INSERT INTO t SELECT range, repeat('x', 100) FROM range(100)"))
        # a read-only mount over the folder (the files open already are written through it)
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
        try:
            stored, refused = 0, 0
            for i in range(3):  # one goes to the WAL; its checkpoint fails and DuckDB gives up
                try:
                    store.write(
                        lambda c, i=i: c.execute(
                            f"INSERT INTO t SELECT {i}, repeat('y', 1000) FROM range(1000)"
                        )
                    )
                    stored += 1000
                except StoreUnwritable:
                    refused += 1
            assert refused >= 2, (stored, refused)
            # readiness and metrics say so (/ready said "writer: alive" while every write was a 503)
            assert store.unwritable and store.writer_state.startswith("cannot commit"), store.writer_state
            with pytest.raises(StoreUnwritable):  # reads too, in words: the file is closed
                store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall())
        finally:
            subprocess.run(["umount", str(data)], check=True)
        time.sleep(Store.RESERVE_CHECK_S)  # the next reopen is tried at most this often
        for _ in range(50):  # a read asks the writer to try (a safety net, never what is asserted)
            try:
                store.read(lambda c: c.execute("SELECT 1").fetchall())
                break
            except StoreUnwritable:
                time.sleep(0.1)
        else:
            raise AssertionError("reads never came back without a write")
        store.write(lambda c: c.execute("INSERT INTO t VALUES (-1, 'back')"))
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(100 + stored + 1,)]
        assert store.writer_state == "alive"
    finally:
        store.close()


def test_an_unwritable_store_folder_shows_in_readiness_until_it_can_be_written(small_disk: Path) -> None:
    """The folder read-only with no WAL open (DuckDB cannot make one): every write was refused
    while /ready said "writer: alive" and no gauge moved. And once it can be written again, an
    idle server must not keep saying otherwise."""
    from analytics.core.errors import StoreUnwritable

    data = small_disk / "quiet"
    data.mkdir()
    store = Store(data / "s.duckdb")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT)"))
        store.write(lambda c: c.execute("CHECKPOINT"))  # no WAL left: the next write makes one
        assert not (data / "s.duckdb.wal").exists()
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
        try:
            with pytest.raises(StoreUnwritable):
                store.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            assert store.unwritable
            assert store.writer_state.startswith("cannot commit (the store's folder cannot be written")
        finally:
            subprocess.run(["umount", str(data)], check=True)
        assert not store.unwritable and store.writer_state == "alive"  # no write needed to see it
        store.write(lambda c: c.execute("INSERT INTO t VALUES (2)"))
        assert store.read(lambda c: c.execute("SELECT list(i) FROM t").fetchall()) == [([2],)]
    finally:
        store.close()


def test_a_compaction_on_a_read_only_store_folder_is_refused_in_words(small_disk: Path) -> None:
    """Its checkpoint made DuckDB give up on the file, the reopen failed, and the read that
    tried again on the closed connection was a 500 "internal error"."""
    from analytics.core.errors import StoreUnwritable

    data = small_disk / "compact"
    data.mkdir()
    ctx = open_context(Settings(db_path=data / "s.duckdb", webui_secret_key=SECRET, port=0))
    try:
        ctx.store.write(lambda c: c.execute("CREATE TABLE t (i BIGINT)"))
        ctx.store.write(lambda c: c.execute("INSERT INTO t SELECT range FROM range(1000)"))  # in the WAL
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
        try:
            with pytest.raises(StoreUnwritable, match="could not be reopened"):
                reclaim_space.compact(ctx)
        finally:
            subprocess.run(["umount", str(data)], check=True)
        for _ in range(50):  # reopened once the folder can be written (a safety net, not asserted)
            try:
                assert ctx.store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(1000,)]
                break
            except StoreUnwritable:
                time.sleep(0.1)
        else:
            raise AssertionError("the store never came back")
    finally:
        ctx.close()
