"""The online file swap: a retention pass that deletes most runs leaves a small file, every row
and object is still there, and readers, writers and the HTTP API never notice the swap.

The store's writer and gate are driven with events, never sleeps: a `Gate` task holds the
writer so a rebuild and the writes behind it queue in a known order, and a read that blocks
inside `read` is a read in flight when the swap wants to close the old file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from analytics.core.context import Context
from analytics.core.store import Connection, Store, StoreBusy
from analytics.retention import apply, policies, reclaim_space
from analytics.retention.policies import Policy
from tests.analytics.core.test_store import WAIT, Gate
from tests.factories import World, bearer, save_run, store_contents
from tests.factories.retention import ADMIN, NOW, annotate, generate, make_flows


def tables(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as text, sorted: equal means the same contents."""

    return ctx.store.read(store_contents)


def q(ctx: Context, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return ctx.store.read(lambda c: c.execute(sql, params or []).fetchall())


def until(check: Callable[[], bool]) -> None:
    """Wait for a state another thread reaches (bounded; the bound is never what is asserted)."""
    done = threading.Event()
    for _ in range(int(WAIT * 100)):
        if check():
            return
        done.wait(0.01)
    raise AssertionError("the state was never reached")


def test_a_retention_pass_deleting_most_runs_swaps_in_a_small_file_with_every_row(ctx: Context) -> None:
    ids = make_flows(ctx, ["a", "b", "c"])
    made = generate(ctx, list(ids.values()), 3000, days=100, pad=12_000)
    annotate(ctx, made)
    ctx.store.read(lambda c: c.execute("CHECKPOINT").fetchall())
    size_before = reclaim_space.store_bytes(ctx.store.path)
    nodes_before = q(ctx, "SELECT count(*) FROM execution_nodes")[0][0]
    policies.set_policy(ctx, ADMIN, Policy(max_age_days=10))
    out = apply.run_retention(ctx, now=NOW, compact=False)  # the pass; then its compaction, alone
    assert out["deleted"] > 0.8 * len(made)
    kept = tables(ctx)
    assert kept["executions"] and kept["execution_annotations"] and kept["prices"] and kept["users"]
    assert kept["flows"] and kept["retention_runs"]
    nodes_kept = q(ctx, "SELECT count(*) FROM execution_nodes")[0][0]
    assert 0 < nodes_kept < nodes_before

    done = reclaim_space.compact(ctx)
    assert done.rebuilt and done.checkpointed and done.rows == len(kept["executions"])
    # measured: 23.9 MB -> 8.1 MB (0.34); the in-place rewrite alone left 28.8 MB
    assert done.bytes_after < 0.4 * size_before, (size_before, done.bytes_after)
    assert not Path(f"{ctx.store.path}.compacting").exists()
    assert tables(ctx) == kept

    # the same schema: key, checks, index, view; ingest and counters still work
    assert q(ctx, "SELECT count(*) FROM execution_nodes")[0][0] == nodes_kept
    assert ("executions_flow_id",) in q(
        ctx, "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'executions'"
    )
    some = q(ctx, "SELECT id::VARCHAR FROM executions LIMIT 1")[0][0]
    with pytest.raises(duckdb.ConstraintException):
        ctx.store.write(
            lambda c: c.execute("INSERT INTO executions SELECT * FROM executions WHERE id = ?", [some])
        )
    with pytest.raises(duckdb.ConstraintException):
        ctx.store.write(lambda c: c.execute("UPDATE executions SET status = 'nope' WHERE id = ?", [some]))
    order = q(ctx, "SELECT flow_id, created_at FROM executions ORDER BY rowid")
    assert order == sorted(order)  # the copy kept the rewrite's order


def make_store(tmp_path: Path, runs: int = 20_000) -> Store:
    store = Store(tmp_path / "s.duckdb")
    store.write(
        lambda c: c.execute(
            "CREATE TABLE executions (id INTEGER PRIMARY KEY, flow VARCHAR NOT NULL);"
            "CREATE INDEX executions_flow ON executions (flow);"
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, note VARCHAR);"
            f"INSERT INTO executions SELECT range, 'f' || (range % 7) FROM range({runs})"
        )
    )
    return store


def test_readers_and_writers_never_notice_the_swap(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    counts: list[int] = []
    cursors: list[Connection] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                counts.append(
                    store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()[0][0])
                )
                cur = store.read(lambda c: c)
                if not cursors or cursors[-1] is not cur:
                    cursors.append(cur)
            except BaseException as exc:  # what the test asserts never happens
                errors.append(exc)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    until(lambda: len(counts) > 0)
    gate = Gate(store)  # the writer is busy: the rebuild and the writes behind it queue in order
    rebuilt: list[Any] = []
    swap = threading.Thread(target=lambda: rebuilt.append(store.rebuild_file()), daemon=True)
    swap.start()
    until(lambda: store._queue.qsize() == 1)
    writes = [
        store.submit(lambda c, i=i: c.execute("INSERT INTO notes VALUES (?, 'during')", [i]))
        for i in range(50)
    ]
    gate.release()
    swap.join(WAIT)
    assert rebuilt and rebuilt[0].tables == {"main.executions": 20_000, "main.notes": 0}
    for w in writes:
        w.result(timeout=WAIT)
    seen = len(counts)
    until(lambda: len(counts) > seen + 5)  # the reader goes on after the swap
    stop.set()
    thread.join(WAIT)
    assert not errors
    assert set(counts) == {20_000}
    assert len(cursors) == 2  # one cursor on the old file, a new one on the fresh file
    assert store.read(lambda c: c.execute("SELECT count(*) FROM notes").fetchall()) == [(50,)]
    # the writes went into the new file: they survive a reopen
    store.close()
    with Store(tmp_path / "s.duckdb") as again:
        assert again.read(
            lambda c: c.execute("SELECT count(*), count(DISTINCT id) FROM notes").fetchall()
        ) == [(50, 50)]
        assert again.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()) == [(20_000,)]


def test_a_read_in_flight_finishes_on_the_old_file_before_it_closes(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    inside, release = threading.Event(), threading.Event()
    answers: list[Any] = []

    def long_read(c: Connection) -> int:
        inside.set()
        release.wait(WAIT)
        return c.execute("SELECT count(*) FROM executions").fetchall()[0][0]

    reader = threading.Thread(target=lambda: answers.append(store.read(long_read)), daemon=True)
    reader.start()
    assert inside.wait(WAIT)
    rebuilt: list[Any] = []
    swap = threading.Thread(target=lambda: rebuilt.append(store.rebuild_file(drain_s=WAIT)), daemon=True)
    swap.start()
    until(lambda: store._swapping)  # copied; now waiting for the read in flight
    assert not rebuilt
    release.set()
    reader.join(WAIT)
    swap.join(WAIT)
    assert answers == [20_000] and rebuilt
    assert store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()) == [(20_000,)]
    store.close()


def test_a_swap_that_cannot_go_on_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    path = tmp_path / "s.duckdb"
    fresh = tmp_path / "s.duckdb.compacting"
    store.read(lambda c: c.execute("CHECKPOINT").fetchall())
    inode = path.stat().st_ino

    # a stream is open: refused before anything is copied
    with store.stream() as cur:
        with pytest.raises(StoreBusy):
            store.rebuild_file()
        assert cur.execute("SELECT count(*) FROM executions").fetchall() == [(20_000,)]
    # a read that does not leave in time: the copy is thrown away, the old file stays
    inside, release = threading.Event(), threading.Event()
    reader = threading.Thread(
        target=lambda: store.read(lambda c: (inside.set(), release.wait(WAIT))), daemon=True
    )
    reader.start()
    assert inside.wait(WAIT)
    with pytest.raises(StoreBusy):
        store.rebuild_file(drain_s=0.05)
    release.set()
    reader.join(WAIT)
    assert path.stat().st_ino == inode and not fresh.exists()
    store.write(lambda c: c.execute("INSERT INTO notes VALUES (1, 'after')"))
    assert store.read(lambda c: c.execute("SELECT count(*) FROM notes").fetchall()) == [(1,)]

    # leftovers of a crash before an earlier rename are removed first
    fresh.write_bytes(b"garbage from a crash")
    done = store.rebuild_file()
    assert done.tables == {"main.executions": 20_000, "main.notes": 1}
    assert path.stat().st_ino != inode and not fresh.exists()
    store.close()


def test_the_server_answers_right_after_a_swap(client: TestClient, world: World) -> None:
    ids = [save_run(world, world.public) for _ in range(5)]
    world.ctx.store.rebuild_file()
    r = client.get(f"/api/v1/flows/{world.public}/executions", headers=bearer("owner"))
    assert r.status_code == 200, r.text
    assert {e["id"] for e in r.json()} == set(ids)
    world.post_run("owner", world.public)
    r = client.get(f"/api/v1/flows/{world.public}/executions/stats", headers=bearer("owner"))
    assert r.status_code == 200 and r.json()["total_executions"] == 6, r.text
