"""The store: one writer thread with group commit, read cursors that never wait for it.

Modelled on datasette's test_internals_database.py. To put several tasks into one batch
deterministically (no sleeps), a "gate" task holds the writer inside its transaction while the
others are queued; releasing it lets the writer drain everything waiting at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pytest

from analytics.core.errors import StoreClosed
from analytics.core.store import Append, Connection, Rows, Store

T = TypeVar("T")
WAIT = 30.0  # safety bound for every wait; never what a test asserts
ROWS_SCHEMA = pa.schema([("id", pa.int32()), ("note", pa.string())])


class Boom(Exception):
    pass


class Gate:
    """A write task that holds the writer (inside its transaction) until released."""

    def __init__(self, store: Store) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.future = store.submit(self._hold)
        assert self.entered.wait(WAIT), "the writer never started the gate task"

    def _hold(self, conn: Connection) -> str:
        self.entered.set()
        self.released.wait(WAIT)
        return "gate"

    def release(self) -> None:
        self.released.set()
        assert self.future.result(timeout=WAIT) == "gate"


def in_thread(fn: Callable[[], T]) -> T:
    """Run fn on a fresh thread (so on its own read cursor); bounded."""
    box: Future[T] = Future()

    def run() -> None:
        try:
            box.set_result(fn())
        except BaseException as exc:
            box.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return box.result(timeout=WAIT)


def count(store: Store, where: str = "true") -> int:
    return int(store.read(lambda c: c.execute(f"SELECT count(*) FROM t WHERE {where}").fetchall()[0][0]))


def insert(id_: int, note: str | None = None) -> Callable[[Connection], int]:
    def fn(c: Connection) -> int:
        c.execute("INSERT INTO t VALUES (?, ?, txid_current())", [id_, note])
        return id_

    return fn


def append(*ids: int, note: str = "appended") -> Append:
    return Append({"a": Rows(ROWS_SCHEMA, {"id": list(ids), "note": [note] * len(ids)})})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    s.write(lambda c: c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note VARCHAR, txid BIGINT)"))
    s.write(lambda c: c.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, note VARCHAR)"))
    yield s
    s.close()


def test_write_answers_what_the_function_returned(store: Store) -> None:
    got = store.write(lambda c: c.execute("INSERT INTO t VALUES (1, 'x', 0) RETURNING id, note").fetchall())
    assert got == [(1, "x")]
    assert store.write(append(7, 8)) is None
    assert store.read(lambda c: c.execute("SELECT id FROM a ORDER BY id").fetchall()) == [(7,), (8,)]


def test_exception_reaches_the_caller_and_the_writer_keeps_working(store: Store) -> None:
    raised = Boom("no")

    def half_then_fail(c: Connection) -> None:
        c.execute("INSERT INTO t VALUES (1, 'half', 0)")
        raise raised

    with pytest.raises(Boom) as info:
        store.write(half_then_fail)
    assert info.value is raised
    assert count(store) == 0, "the failed task's insert was not rolled back"

    with pytest.raises(duckdb.CatalogException):
        store.write(lambda c: c.execute("INSERT INTO no_such_table VALUES (1)"))
    with pytest.raises(duckdb.Error):
        store.write(append(1, 1))  # duplicate key inside one append
    assert store.read(lambda c: c.execute("SELECT count(*) FROM a").fetchall()) == [(0,)]

    assert store.write(insert(2)) == 2
    assert store.write(append(1, 2)) is None
    assert count(store) == 1
    assert store.read(lambda c: c.execute("SELECT count(*) FROM a").fetchall()) == [(2,)]
    assert store._writer.is_alive()


def test_a_failed_append_reports_its_own_error(store: Store) -> None:
    store.write(append(1))
    with pytest.raises(duckdb.ConstraintException, match="1"):
        store.write(append(2, 1))  # id 1 is taken: the caller should hear about the key
    assert store.read(lambda c: c.execute("SELECT id FROM a").fetchall()) == [(1,)]


def test_failing_after_commit_hook_does_not_lose_the_ack(store: Store) -> None:
    def hook(_: object) -> None:
        raise Boom("hook")

    assert store.write(insert(1), after_commit=hook) == 1
    assert store.write(insert(2)) == 2
    assert count(store) == 2


def test_group_commit_many_concurrent_submits_share_transactions(store: Store) -> None:
    threads_n, per_thread = 8, 25
    futures: list[Future[Any]] = []
    gate = Gate(store)

    def submit_some(n: int) -> None:
        for i in range(per_thread):
            futures.append(store.submit(insert(n * per_thread + i)))
            futures.append(store.submit(append(n * per_thread + i)))

    threads = [threading.Thread(target=submit_some, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    gate.release()
    for f in futures:
        f.result(timeout=WAIT)

    total = threads_n * per_thread
    assert count(store) == total
    assert store.read(lambda c: c.execute("SELECT count(*) FROM a").fetchall()) == [(total,)]
    txids = store.read(lambda c: c.execute("SELECT count(DISTINCT txid) FROM t").fetchall()[0][0])
    assert txids < total, "every submit got its own transaction: no group commit"
    assert txids == 1, "the writer did not take everything that was waiting into one transaction"


def test_tasks_in_one_batch_apply_in_submission_order(store: Store) -> None:
    seen: list[tuple[int, int]] = []

    def look(c: Connection) -> None:
        rows = c.execute("SELECT count(*), txid_current() FROM a").fetchall()
        seen.append(rows[0])

    gate = Gate(store)
    futures = [store.submit(append(1, 2)), store.submit(append(3)), store.submit(look)]
    futures += [store.submit(Append({"a": pa.table({"id": [4, 5], "note": ["t", "t"]})})), store.submit(look)]
    futures.append(store.submit(lambda c: c.execute("UPDATE a SET note = 'last' WHERE id = 1")))
    gate.release()
    for f in futures:
        f.result(timeout=WAIT)
    assert [n for n, _ in seen] == [3, 5], "a task did not see the tasks queued before it"
    assert seen[0][1] == seen[1][1], "one drained batch ran in more than one transaction"
    assert store.read(lambda c: c.execute("SELECT note FROM a WHERE id = 1").fetchall()) == [("last",)]


def test_a_failing_task_does_not_fail_the_others_in_its_batch(store: Store) -> None:
    def half_then_fail(c: Connection) -> None:
        c.execute("INSERT INTO t VALUES (2, 'half', 0)")
        raise Boom("bad task")

    gate = Gate(store)
    good_fn = store.submit(insert(1))
    bad_fn = store.submit(half_then_fail)
    good_append = store.submit(append(10))
    bad_append = store.submit(append(10, 11))  # merged with the one before: 10 twice
    good_last = store.submit(insert(3))
    gate.release()

    assert good_fn.result(timeout=WAIT) == 1
    assert good_append.result(timeout=WAIT) is None
    assert good_last.result(timeout=WAIT) == 3
    with pytest.raises(Boom):
        bad_fn.result(timeout=WAIT)
    with pytest.raises(duckdb.Error):  # the key violation (see test_a_failed_append_reports_its_own_error)
        bad_append.result(timeout=WAIT)
    assert store.read(lambda c: c.execute("SELECT id FROM t ORDER BY id").fetchall()) == [(1,), (3,)]
    assert store.read(lambda c: c.execute("SELECT id FROM a ORDER BY id").fetchall()) == [(10,)]


def test_the_ack_comes_after_the_commit(store: Store) -> None:
    inside = threading.Event()
    go_on = threading.Event()
    hook_saw: list[int] = []

    def slow(c: Connection) -> None:
        inside.set()
        go_on.wait(WAIT)

    def hook(_: object) -> None:  # runs after COMMIT: another thread must see the row
        hook_saw.append(in_thread(lambda: count(store, "id = 1")))

    gate = Gate(store)
    first = store.submit(insert(1), after_commit=hook)
    store.submit(slow)
    gate.release()
    assert inside.wait(WAIT)
    # `first` ran in the open transaction that `slow` still holds: not committed, not acked
    assert not first.done(), "acknowledged before its transaction committed"
    assert in_thread(lambda: count(store, "id = 1")) == 0
    assert hook_saw == []

    go_on.set()
    assert first.result(timeout=WAIT) == 1
    assert hook_saw == [1], "the after-commit hook did not run (or ran before the commit) before the ack"
    assert in_thread(lambda: count(store, "id = 1")) == 1


def test_reads_do_not_wait_for_the_writer(store: Store) -> None:
    store.write(insert(1))
    inside = threading.Event()
    go_on = threading.Event()

    def hold(c: Connection) -> None:
        c.execute("INSERT INTO t VALUES (2, 'pending', 0)")
        c.execute("UPDATE t SET note = 'changed' WHERE id = 1")
        inside.set()
        go_on.wait(WAIT)

    held = store.submit(hold)
    try:
        assert inside.wait(WAIT)
        # the writer is inside its transaction; reads answer at once with the committed state
        assert in_thread(lambda: store.read(lambda c: c.execute("SELECT id, note FROM t").fetchall())) == [
            (1, None)
        ]
        assert count(store) == 1
    finally:
        go_on.set()
    held.result(timeout=WAIT)
    assert in_thread(lambda: count(store)) == 2
    assert count(store, "note = 'changed'") == 1


def test_close_twice_is_safe_and_later_use_raises_store_closed(store: Store) -> None:
    store.write(insert(1))
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosed):
        store.submit(insert(2))
    with pytest.raises(StoreClosed):
        store.write(insert(2))
    with pytest.raises(StoreClosed):
        store.read(lambda c: c.execute("SELECT 1").fetchall())


def test_close_stops_a_read_still_running_and_checkpoints(db: Path, store: Store) -> None:
    """A job's query still running at shutdown made DuckDB refuse to close its cursor, then
    the root ("connection is busy with another call"): no checkpoint, "shutdown failed"."""
    store.write(insert(1))
    started, failed = threading.Event(), []

    def long_read(c: Connection) -> Any:
        started.set()
        return c.execute("SELECT count(*) FROM range(100000000000) a").fetchall()

    def reader() -> None:
        try:
            store.read(long_read)
        except Exception as exc:
            failed.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(WAIT)
    threading.Event().wait(0.2)  # in the query
    store.close()  # raised ResourceInUseException
    thread.join(timeout=WAIT)
    assert not thread.is_alive() and failed
    assert not db.with_name(db.name + ".wal").exists()  # checkpointed at close
    with Store(db) as again:
        assert again.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(1,)]


def test_close_finishes_queued_writes_and_refuses_new_ones(db: Path, store: Store) -> None:
    gate = Gate(store)
    queued = [store.submit(insert(i)) for i in range(50)]
    closer = threading.Thread(target=store.close)
    closer.start()
    for _ in range(10_000):  # bounded: close() marks the store closed before it waits
        if store.closed:
            break
        threading.Event().wait(0.001)
    with pytest.raises(StoreClosed):
        store.submit(insert(99))
    gate.release()
    closer.join(timeout=WAIT)
    assert not closer.is_alive()
    assert [f.result(timeout=WAIT) for f in queued] == list(range(50))

    with Store(db) as again:  # the file is free again, and every queued write is in it
        assert again.read(lambda c: c.execute("SELECT count(*), max(id) FROM t").fetchall()) == [(50, 49)]


def _try_open(db: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        """
        import sys
        from analytics.core.store import Store
        try:
            Store(sys.argv[1]).close()
        except Exception as exc:
            print(type(exc).__name__, exc)
        else:
            print("opened")
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_a_second_process_gets_store_locked(db: Path, store: Store) -> None:
    store.write(insert(1))
    result = _try_open(db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("StoreLocked "), result.stdout + result.stderr
    assert "in use by another process" in result.stdout
    assert store.write(insert(2)) == 2  # the holder is unaffected

    store.close()
    assert _try_open(db).stdout.strip() == "opened"


def test_append_schemas_match_the_tables_column_order(ctx) -> None:  # type: ignore[no-untyped-def]
    """Appends insert by position, so each Arrow schema must be its table's columns, in order."""
    from analytics.history.ingest import EXECUTIONS_SCHEMA

    for table, schema in (("executions", EXECUTIONS_SCHEMA),):
        columns = ctx.store.read(
            lambda c, t=table: [r[0] for r in c.execute(f"SELECT * FROM {t} LIMIT 0").description]
        )
        assert schema.names == columns


def test_a_notebook_opens_a_store_read_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Notebooks open the file read-only when no server holds it: reads work, writes are refused."""
    from analytics.access.permissions import Viewer
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from analytics.core.errors import InvalidInput, NotFound, StoreClosed
    from analytics.flows import registry as flows
    from analytics.history import ingest, search
    from tests.factories import make_execution

    settings = Settings(db_path=tmp_path / "nb.duckdb")
    admin = Viewer("root", "admin")
    with open_context(settings) as ctx:
        fid = flows.create_flow(ctx, admin, name="f", nodes=[], edges=[]).id
        ingest.save_execution(ctx, admin, make_execution(fid), flow_id=fid)
    with open_context(settings, read_only=True) as ro:
        assert search.count_executions(ro, admin) == 1
        with pytest.raises(StoreClosed, match="read-only"):
            ingest.save_execution(ro, admin, make_execution(fid), flow_id=fid)
    with pytest.raises(NotFound, match="no store"):
        open_context(Settings(db_path=tmp_path / "missing.duckdb"), read_only=True)
    Store(tmp_path / "bare.duckdb").close()
    with pytest.raises(InvalidInput, match="schema version"):
        open_context(Settings(db_path=tmp_path / "bare.duckdb"), read_only=True)


@pytest.mark.parametrize("how", ["removed", "replaced", "truncated"])
def test_a_store_file_gone_from_under_the_store_refuses_writes_and_rescues_what_it_held(
    tmp_path: Path, how: str
) -> None:
    """`rm store.duckdb` (or a truncate) under the running server went unseen: 300 writes were
    acknowledged into a file no later start could open, the close folded the WAL into the dead
    file, and the next start made an empty store. Now the next write is refused, and what the
    open file held (every acknowledged write) is copied beside it first."""
    from analytics.core.errors import StoreLost

    path = tmp_path / "s.duckdb"
    store = Store(path)
    try:
        store.write(lambda c: c.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)"))
        store.write(lambda c: c.execute("CHECKPOINT"))
        store.write(lambda c: c.execute("INSERT INTO t SELECT range FROM range(1000, 1500)"))  # in the WAL
        if how == "removed":
            path.unlink()
        elif how == "replaced":
            path.rename(tmp_path / "moved.duckdb")
            path.write_bytes(b"")
        else:
            os.truncate(path, 0)
        with pytest.raises(StoreLost):
            store.write(lambda c: c.execute("INSERT INTO t VALUES (-1)"))
        with pytest.raises(StoreLost) as refused:  # and every write after it
            store.write(lambda c: c.execute("INSERT INTO t VALUES (-2)"))
        assert "cannot commit (the store file" in store.writer_state
    finally:
        store.close()
    assert not (tmp_path / "s.duckdb.wal").exists()  # never replayed onto the store restored there
    [rescued] = tmp_path.glob("s.duckdb.rescued-*")
    assert f"as {rescued.name}: restore that" in refused.value.detail, refused.value.detail
    if how != "truncated":  # the truncated file lost the blocks the copy needed
        with duckdb.connect(str(rescued), read_only=True) as c:
            assert c.execute("SELECT count(*), max(i) FROM t").fetchall() == [(1500, 1499)]


def test_a_store_folder_removed_says_the_copy_failed_rather_than_pointing_at_it(tmp_path: Path) -> None:
    """The copy is made beside the store: with its folder gone there is none, and the 503 said
    "the server copied what it held beside it", sending the operator after a file that is not."""
    from analytics.core.errors import StoreLost

    folder = tmp_path / "data"
    folder.mkdir()
    store = Store(folder / "s.duckdb")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)"))
        shutil.rmtree(folder)
        with pytest.raises(StoreLost) as refused:
            store.write(lambda c: c.execute("INSERT INTO t VALUES (-1)"))
    finally:
        store.close()
    assert "copying what the server held failed" in refused.value.detail
    assert "restore the latest backup" in refused.value.detail and "copied" not in refused.value.detail


def test_a_checkpoint_put_off_by_another_write_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """DuckDB refuses a CHECKPOINT while another connection holds a write transaction (a
    compaction's, say): the writer tries again after the next commit, and the WAL keeps every
    write meanwhile. Logged at ERROR under load, it paged operators for nothing."""
    store = Store(tmp_path / "s.duckdb", checkpoint_threshold="1KB")
    try:
        store.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        other = store.cursor()
        other.execute("BEGIN TRANSACTION")
        other.execute("CREATE TABLE held (x INTEGER)")  # a write, not committed yet
        with caplog.at_level("WARNING", logger="analytics.core.store"):
            store.write(lambda c: c.execute("INSERT INTO t SELECT range FROM range(10000)"))
            store.write(lambda c: None)  # the checkpoint runs after the answer: wait for it
        put_off = [r for r in caplog.records if "other write transactions" in r.getMessage()]
        assert put_off and all(r.levelname == "WARNING" for r in put_off), caplog.text
        other.execute("ROLLBACK")
        with caplog.at_level("WARNING", logger="analytics.core.store"):
            store.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            store.write(lambda c: None)
        assert "the one skipped earlier has run" in caplog.text  # tried again, and done
        assert store.read(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(10001,)]
    finally:
        store.close()
