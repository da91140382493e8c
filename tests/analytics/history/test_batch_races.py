"""Two batches carrying the same ids at once: each id is stored once, and the batch that lost
the race says "already exists" for those ids and stores the rest of its items.

Both batches check the store for their ids before either commits (the writer is held until
both have queued their rows), so the second insert is refused on the id's key as a whole; it
used to answer "not stored (an internal error, logged)" for every item of the chunk.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.flows import registry as flows
from analytics.history import batch_bulk, ingest

ADMIN = Viewer("admin", "admin")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = open_context(Settings(db_path=tmp_path / "store.duckdb"))
    users.create_user(context, "admin", role="admin")
    flows.create_flow(context, ADMIN, name="f", nodes=[], edges=[], flow_id="flow-1")
    try:
        yield context
    finally:
        context.close()


def _runs(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.UUID(int=i + 1)),
            "flow_id": "flow-1",
            "status": "success",
            "execution_time": i,
            "created_at": 1_760_000_000 + i,
            "node_results": {f"model_{i}": {"modelId": "gpt-4o", "usage": {"prompt_tokens": i}}},
        }
        for i in range(n)
    ]


def _bulk(ctx: Context, items: list[dict[str, Any]]) -> list[ingest.ItemResult]:
    body = b"\n".join(orjson.dumps(r) for r in items)
    return batch_bulk.ingest_ndjson(ctx, ADMIN, body).items


def _per_item(ctx: Context, items: list[dict[str, Any]]) -> list[ingest.ItemResult]:
    return ingest.save_executions(ctx, ADMIN, items)


@pytest.mark.parametrize("ingest_fn", [_bulk, _per_item], ids=["bulk", "per-item"])
def test_ids_stored_meanwhile_are_refused_as_existing_and_the_rest_stored(
    ctx: Context, ingest_fn: Callable[[Context, list[dict[str, Any]]], list[ingest.ItemResult]]
) -> None:
    runs = _runs(30)
    batches = {"a": runs[0:20], "b": runs[10:30]}  # ids 10..19 in both
    results: dict[str, list[ingest.ItemResult]] = {}
    gate = threading.Event()
    held = ctx.store.submit(lambda _conn: gate.wait(30))  # the writer waits: both check, then queue
    threads = [
        threading.Thread(target=lambda name=name: results.__setitem__(name, ingest_fn(ctx, batches[name])))
        for name in batches
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while ctx.store.queue_depth() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ctx.store.queue_depth() >= 2, "both batches should have queued their rows"
    gate.set()
    for t in threads:
        t.join(60)
    held.result()

    stored = {name: {r.id for r in results[name] if r.status == "stored"} for name in batches}
    refused = {name: [r for r in results[name] if r.status == "refused"] for name in batches}
    shared = {r["id"] for r in runs[10:20]}
    # each shared id stored by exactly one batch; the other says it exists; nothing else refused
    assert stored["a"] & stored["b"] == set()
    assert (stored["a"] | stored["b"]) == {r["id"] for r in runs}
    for name in batches:
        assert {r["id"] for r in batches[name]} - shared <= stored[name]
        for r in refused[name]:
            assert r.detail is not None and r.detail.endswith("already exists"), r.detail
    assert sorted(len(refused[name]) for name in batches) == [0, 10]
    rows = ctx.store.read(
        lambda c: c.execute("SELECT count(*), count(DISTINCT id) FROM executions").fetchone()
    )
    assert rows == (30, 30)
    # the counters the stats answer from count each run once
    assert ctx.counters.stats("flow-1").total_executions == 30


def test_a_batch_and_a_single_save_commit_together(ctx: Context) -> None:
    """The bulk path hands payloads as `arrow.json` and a single save as strings: concatenating
    the two refused the mix ("Schema at index 1 was different"), the group was rolled back and
    each write committed alone (the log showed the error; throughput paid)."""
    from tests.factories import ROOT, make_execution
    from tests.factories.writer import in_one_commit

    fid = flows.create_flow(ctx, ROOT, name="mixed", nodes=[], edges=[]).id
    lines = b"\n".join(orjson.dumps(make_execution(fid)) for _ in range(3))
    before = ctx.store.stats.commits
    bulk, single = in_one_commit(
        ctx,
        lambda: batch_bulk.ingest_ndjson(ctx, ROOT, lines),
        lambda: ingest.save_executions(ctx, ROOT, [make_execution(fid)]),
    )
    assert bulk is None and single is None
    assert ctx.store.stats.commits - before == 2  # the held write's commit, then one for both
    assert ctx.counters.stats(fid).total_executions == 4
