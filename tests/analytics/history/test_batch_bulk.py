"""The batch's bulk path gives every item today's verdict and stores every column as today.

Differential: the same NDJSON bodies (the benchmark's generated runs with hostile items mixed
in) go through the per-item path (`ingest.ingest_batch` over `batch_bulk.ndjson_items`, what
the endpoint ran before) into one store and through `batch_bulk.ingest_ndjson` into another
store with the same users and flows; the verdicts and every stored column of every run must be
equal. Ids and times the server makes up (no `id`, no `created_at`) are mapped by item index.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import InvalidInput
from analytics.flows import registry as flows
from analytics.history import batch_bulk, ingest, preparing
from bench import generate

SEED = 42
N_RUNS = 400
EXISTING_ID = "0190a000-0000-7000-8000-000000000001"


def _runs() -> list[dict[str, Any]]:
    return list(itertools.islice(generate.generate_runs(N_RUNS, seed=SEED), N_RUNS))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many chunks a batch, so duplicates and verdicts cross chunk boundaries."""
    monkeypatch.setattr(batch_bulk, "CHUNK_LINES", 37)


def _open(folder: Path, name: str, flow_ids: set[str]) -> Context:
    ctx = open_context(Settings(db_path=folder / f"{name}.duckdb"))
    users.create_user(ctx, "bench-admin", role="admin")
    for u in generate.users():
        users.create_user(ctx, u)
    for f in generate.flows(SEED):
        if f["id"] in flow_ids:
            flows.create_flow(
                ctx, Viewer(f["user_id"]), name=f["name"], nodes=f["nodes"], edges=f["edges"], flow_id=f["id"]
            )
    # a run already stored, in both stores: importing its id again is refused
    old = {"id": EXISTING_ID, "flow_id": sorted(flow_ids)[0], "status": "success", "execution_time": 1}
    ingest.ingest_batch(ctx, Viewer("bench-admin", "admin"), [old])
    return ctx


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Context, Context, list[dict[str, Any]]]]:
    folder = tmp_path_factory.mktemp("bulk")
    runs = _runs()
    flow_ids = {r["flow_id"] for r in runs}
    old, new = _open(folder, "old", flow_ids), _open(folder, "new", flow_ids)
    try:
        yield old, new, runs
    finally:
        old.close()
        new.close()


def _hostile(runs: list[dict[str, Any]], owner: str) -> list[bytes]:
    """Items today's path refuses, or stores in some unusual way, as NDJSON lines."""
    good = runs[0]
    fid = good["flow_id"]
    base = {"flow_id": fid, "status": "success", "execution_time": 5, "created_at": 1_760_000_000}

    def item(**changes: Any) -> bytes:
        d = {**base, **changes}
        return json.dumps({k: v for k, v in d.items() if v is not _DROP}, ensure_ascii=False).encode()

    dup = str(uuid.uuid4())
    lines = [
        # wrong types, each field
        item(flow_id=5), item(status=1), item(execution_time="5"), item(execution_time=5.0),
        item(execution_time=5.5), item(execution_time=True), item(execution_time=-1),
        item(execution_time=2**53 + 1), item(execution_time=2**53), item(inputs="text"), item(inputs=[]),
        item(node_results=[1]), item(errors="x"), item(meta=3), item(meta=None), item(meta={"k": "v"}),
        item(outputs=None, node_results=None), item(outputs={"a": 1}, node_results={"a": 1}),
        item(outputs={}, node_results={}),
        # times
        item(created_at="not a date"), item(created_at="2024-01-01T00:00:00+05:30"),
        item(created_at="2024-01-01"), item(created_at="2024-01-01T12:30:00Z"),
        item(created_at="2024-02-30T00:00:00"), item(created_at="2024-01-01T00:00:00.1234567Z"),
        item(created_at=1_700_000_000.123456), item(created_at=1_700_000_000_123), item(created_at=-5),
        item(created_at="2999-01-01T00:00:00"), item(created_at=None), item(created_at=_DROP),
        item(created_at="1700000000"),
        # ids
        item(id="not-a-uuid"), item(id=str(uuid.uuid4()).upper()), item(id=uuid.uuid4().hex),
        item(id="{" + str(uuid.uuid4()) + "}"), item(id=dup), item(id=dup), item(id=EXISTING_ID),
        item(id=None), item(id=5),
        # users, versions, definitions, replays
        item(user_id="u001"), item(user_id=owner), item(user_id=""), item(user_id="x" * 256),
        item(flow_version="v-backfill"), item(flow_version=""), item(flow_version="x" * 256),
        item(flow_version=7), item(flow={"nodes": [{"id": "n1"}], "edges": []}),
        item(flow={"nodes": "x", "edges": []}), item(flow={"nodes": [], "edges": []}, flow_version="v"),
        item(flow=[1]), item(replay_of=str(uuid.uuid4())), item(replay_of="nope"),
        # missing fields, statuses
        item(status=_DROP), item(flow_id=_DROP), item(execution_time=_DROP), b"{}",
        item(status="SUCCESS"), item(status="running"), item(status="error"), item(status="aborted"),
        # flows the caller cannot write, or that do not exist; over-long ids
        item(flow_id="no-such-flow"), item(flow_id="x" * 256), item(flow_id="é" * 255),
        item(flow_id="é" * 256), item(flow_id=""),
        # numbers DuckDB and orjson read or write differently
        item(inputs={"x": 123456789012345678901234567890}), item(inputs={"x": 18446744073709551615}),
        item(inputs={"x": 1.5e-7}), item(inputs={"x": 0.00001}), item(inputs={"x": 1e22}),
        item(inputs={"x": 0.1, "y": -0.0, "z": 1e15, "w": 12345.678}),
        b'{"flow_id": "%s", "status": "success", "execution_time": 1e3}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"x": 1e400}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"x": 0.0000010}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"x": 1.50, "y": -0}}' % fid.encode(),
        # NaN and Infinity, trailing commas: DuckDB would take them
        b'{"flow_id": "%s", "status": "success", "execution_time": NaN}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "meta": {"x": Infinity}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "meta": {"x": -Infinity}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "meta": {"x": nan}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "meta": {"x": [1,2,]}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5,}' % fid.encode(),
        item(inputs={"prompt": "NaN, Infinity, inf, information, [1, ] 1e5"}),
        # unicode and escapes
        item(inputs={"prompt": "héllo 😀 \u2028 \u007f / \\ \" \n \t \u001f \u0000"}),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"p": "\\u00e9\\/\\ud83d\\ude00"}}'
        % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"p": "\\ud800"}}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"p": "\\u001F"}}' % fid.encode(),
        item(node_results={"a\"b_1": {"x": 1}, "é_2": "text", "model_1": {"modelId": "gpt-4o", "0": "H", "1": "i"}}),
        item(node_results={"n": {"usage": {"prompt_tokens": 2**62, "completion_tokens": 2**62}, "model": "gpt-4o"}}),
        # duplicate keys at the top level: orjson keeps the last
        b'{"flow_id": "%s", "status": "error", "execution_time": 5, "status": "success"}' % fid.encode(),
        b'{"flow_id": "%s", "status": "error", "execution_time": 5, "st\\u0061tus": "success"}' % fid.encode(),
        b'{"flow_id": "%s", "status": "success", "execution_time": 5, "inputs": {"\\u0061": 1, "b\\n": "\\u00e9\\t"}}'
        % fid.encode(),
        # nesting: deep but fine, and too deep for orjson to write
        *(_nested(fid, n) for n in (150, 254, 255, 300, 1100)),
        # not JSON, not objects, blank and odd lines
        b"not json", b'{"flow_id": ', b"[1, 2]", b"null", b"5", b'"str"', b"\xef\xbb\xbf{}", b"{} {}",
        b'{"a": 1 /* c */}', b"   ", b"",
        # unknown fields are ignored
        item(extra=1, another={"deep": [1, 2]}), item(Status="bogus", FLOW_ID="x", Inputs=[1]),
    ]  # fmt: skip
    # the same without spaces, as orjson and JSON.stringify write them
    return lines + [c for c in map(_compact, lines) if c is not None]


def _compact(line: bytes) -> bytes | None:
    try:
        value = json.loads(line)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError, RecursionError):  # not JSON; a lone surrogate half
        return None


class _Drop:
    pass


_DROP = _Drop()


def _nested(flow_id: str, depth: int) -> bytes:
    """An item whose meta is `depth` objects deep."""
    meta = b'{"k": ' * depth + b"1" + b"}" * depth
    return b'{"flow_id": "%s", "status": "success", "execution_time": 5, "meta": %s}' % (
        flow_id.encode(),
        meta,
    )


def _body(runs: list[dict[str, Any]], hostile: list[bytes]) -> bytes:
    lines = [orjson.dumps(r) for r in runs]
    for i, line in enumerate(hostile):  # spread through the good runs
        lines.insert(min(len(lines), 1 + i * 5), line)
    lines.insert(3, orjson.dumps(runs[7]))  # the same run again: a duplicate id
    lines.append(orjson.dumps(runs[1]))  # and one chunks away from its first
    return b"\r\n".join(lines[:50]) + b"\n" + b"\n".join(lines[50:]) + b"\n\n"


def _rows(ctx: Context, ids: list[str]) -> dict[str, dict[str, Any]]:
    def read(c: Any) -> list[tuple[Any, ...]]:
        cur = c.execute("SELECT * FROM executions WHERE id::VARCHAR IN (SELECT unnest(?))", [ids])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    return {str(r["id"]): r for r in ctx.store.read(read)}


def _check(
    old: Context, new: Context, viewer: Viewer, body: bytes, timings: batch_bulk.Timings | None = None
) -> ingest.BatchResult:
    before = ingest.ingest_batch(old, viewer, batch_bulk.ndjson_items(body))
    after = batch_bulk.ingest_ndjson(new, viewer, body, timings)
    _compare(old, new, before, after)
    return after


def _pieces(body: bytes, seed: int) -> list[bytes]:
    """The body as a server receives it: pieces of any size, cut anywhere (in a line, in a
    character, between \r and \n)."""
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(body):
        size = rng.choice([1, 2, 7, 100, 2_000, 20_000])
        pieces.append(body[at : at + size])
        at += size
    return pieces


def _check_fed(
    old: Context, new: Context, viewer: Viewer, body: bytes, seed: int, cuts: int
) -> ingest.BatchResult:
    """The same, with the body fed piece by piece (the route streams it): chunks are cut and
    prepared while pieces still arrive."""
    before = ingest.ingest_batch(old, viewer, batch_bulk.ndjson_items(body))
    feed = batch_bulk.NdjsonFeed(new, viewer)
    for piece in _pieces(body, seed):
        feed.add(piece)
    assert feed._lines_before == cuts * batch_bulk.CHUNK_LINES  # chunks cut as the pieces came
    after = feed.finish()
    _compare(old, new, before, after)
    return after


def _compare(old: Context, new: Context, before: ingest.BatchResult, after: ingest.BatchResult) -> None:
    """Equal verdicts, and every stored column of every stored run equal."""
    assert (after.stored, after.refused) == (before.stored, before.refused)
    assert len(after.items) == len(before.items)
    for a, b in zip(before.items, after.items, strict=True):
        assert (a.index, a.status, a.detail) == (b.index, b.status, b.detail), (a, b)
        if a.id != b.id:  # both made up by the server (ingest.new_execution_id)
            assert uuid.UUID(a.id or "") and uuid.UUID(b.id or "")
    old_rows = _rows(old, [i.id for i in before.items if i.id])
    new_rows = _rows(new, [i.id for i in after.items if i.id])
    assert len(old_rows) == len(new_rows) == before.stored
    for a, b in zip(before.items, after.items, strict=True):
        if a.id is None:
            continue
        ra, rb = dict(old_rows[a.id]), dict(new_rows[b.id or ""])
        if a.id != b.id:
            ra.pop("id"), rb.pop("id")
            # made-up times: both within the batch's few seconds
            assert abs((ra.pop("created_at") - rb.pop("created_at")).total_seconds()) < 120
        assert ra == rb, a.index


def test_generated_runs_with_hostile_items_admin(
    stores: tuple[Context, Context, list[dict[str, Any]]],
) -> None:
    old, new, runs = stores
    hostile = _hostile(runs, "bench-admin")
    timings = batch_bulk.Timings()
    result = _check(old, new, Viewer("bench-admin", "admin"), _body(runs[:300], hostile), timings)
    assert result.stored > 300 and result.refused > 40
    # the generated runs and the hostile items that are fine go the bulk way
    assert timings.bulk >= 300 + 20 and timings.per_item >= 50


def test_a_plain_user_and_flows_they_cannot_write(
    stores: tuple[Context, Context, list[dict[str, Any]]],
) -> None:
    old, new, runs = stores
    owner = next(f["user_id"] for f in generate.flows(SEED) if f["id"] == runs[0]["flow_id"])
    body = _body(runs[300:], _hostile(runs, owner))  # other owners' flows among the runs
    timings = batch_bulk.Timings()
    result = _check(old, new, Viewer(owner), body, timings)
    assert timings.bulk >= 10
    details = {i.detail for i in result.items if i.status == "refused"}
    assert any("another user" in (d or "") for d in details)
    assert result.stored > 0 and result.refused > 60


def test_nothing_decidable_and_not_utf8(stores: tuple[Context, Context, list[dict[str, Any]]]) -> None:
    old, new, runs = stores
    _check(
        old, new, Viewer("bench-admin", "admin"), b"\n\nnot json\n\xff\xfe\n" + orjson.dumps(runs[0]) + b"\n"
    )
    _check(old, new, Viewer("bench-admin", "admin"), b"")


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def test_a_json_array_of_the_same_items(stores: tuple[Context, Context, list[dict[str, Any]]]) -> None:
    old, new, runs = stores
    viewer = Viewer("bench-admin", "admin")
    differs = re.compile(batch_bulk._DIFFERS.encode())
    decidable = [
        line
        for line in _hostile(runs, "bench-admin")
        if _parses(line) and not differs.search(line) and line.count(b"{") + line.count(b"[") < 200
    ]
    for hostile in (
        decidable,  # an array orjson reads and DuckDB reads the same
        [*decidable, b'{"a": [1, ]}'],  # DuckDB would read these: the body goes the old way
        [b'{"b": NaN}'],
        [b'{"a": 1e400}'],
        [b"[" * 5000 + b"]" * 5000],
        [b"[" * 300 + b"]" * 300],
    ):
        items = [orjson.dumps(r) for r in runs[100:160]] + hostile + [orjson.dumps(runs[100])]
        body = b"[" + b",\n ".join(items) + b"]"
        after = batch_bulk.ingest_json_array(new, viewer, body)
        if hostile is decidable:
            assert after is not None and len(after.items) > 100
            _compare(old, new, ingest.ingest_batch(old, viewer, orjson.loads(body)), after)
        else:
            assert after is None
    assert batch_bulk.ingest_json_array(new, viewer, b"[1, 2") is None
    assert batch_bulk.ingest_json_array(new, viewer, b'["\xff"]') is None


def test_a_chunk_that_fails_is_refused_and_the_others_are_stored(
    stores: tuple[Context, Context, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, runs = stores
    real = batch_bulk._read
    calls: list[int] = []

    def second_chunk_fails(con: Any, lines: Any) -> Any:
        calls.append(len(lines))
        if lines[0].as_py().rstrip() == fails_on:  # a line comes with its newline
            raise RuntimeError("/secret/path/store.duckdb: injected")
        return real(con, lines)

    monkeypatch.setattr(batch_bulk, "_read", second_chunk_fails)
    batch = [dict(r, id=str(uuid.uuid4())) for r in runs[:100]]
    lines = [orjson.dumps(r) for r in batch]
    fails_on = lines[37].decode()  # the first line of the second chunk (37 a chunk)
    result = batch_bulk.ingest_ndjson(new, Viewer("bench-admin", "admin"), b"\n".join(lines))
    assert len(calls) == 3
    refused = [i for i in result.items if i.status == "refused"]
    assert [i.index for i in refused] == list(range(37, 74))
    assert {i.detail for i in refused} == {"not stored (an internal error, logged), retry"}
    stored = _rows(new, [i.id for i in result.items if i.id])
    assert sorted(stored) == sorted(batch[i]["id"] for i in [*range(37), *range(74, 100)])


def test_preparing_threads_are_kept_and_a_forked_child_still_runs(
    stores: tuple[Context, Context, list[dict[str, Any]]],
) -> None:
    """The same two preparing threads serve every batch (no thread a batch), and between
    batches they hold no DuckDB: threads that kept one made every child forked with a
    `preexec_fn` (pyspark's Java launcher) die of a segfault."""
    _, new, runs = stores
    for _ in range(3):
        body = b"\n".join(orjson.dumps(dict(r, id=str(uuid.uuid4()))) for r in runs[:80])
        assert batch_bulk.ingest_ndjson(new, Viewer("bench-admin", "admin"), body).stored == 80
    threads = [t for t in threading.enumerate() if t.name.startswith("prepare_")]
    assert 1 <= len(threads) <= preparing.PREPARE_WORKERS

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    assert subprocess.Popen(["true"], preexec_fn=ignore_sigint).wait() == 0
    assert [t for t in threading.enumerate() if t.name.startswith("prepare_")] == threads


_PARTS = [
    b"\n",
    b"\r",
    b"\r\n",
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"{}",
    b'{"a": 1}',
    b"x",
    b"\xc3\xa9",
    b"\xff",
]


@settings(deadline=None, max_examples=300)  # no per-example deadline: CI's cores are shared
@given(st.lists(st.sampled_from(_PARTS), max_size=40))
def test_lines_are_those_ending_at_newlines_that_are_not_blank(parts: list[bytes]) -> None:
    """The bulk path finds lines with numpy over the body's bytes; the per-item path (and its line
    numbers in refusals) splits at `\n` only, as NDJSON does: the same lines, the same numbers."""
    body = b"".join(parts)
    lines = batch_bulk.Lines.of(body)
    expected = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
    found = [(int(lines.numbers[i]), lines.body[lines.starts[i] : lines.ends[i]]) for i in range(len(lines))]
    assert found == expected
    values = lines.array()
    try:
        texts = [line.decode() for _, line in expected]
    except UnicodeDecodeError:
        assert values is None
        return
    assert values is not None and len(values) == len(texts)
    for value, text in zip(values.to_pylist(), texts, strict=True):
        # each value is its line, then only what a blank line or a line break holds
        assert value.startswith(text) and not value[len(text) :].strip(" \t\r\n\x0b\x0c")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_body_fed_in_pieces_gets_the_same_verdicts_and_rows(
    stores: tuple[Context, Context, list[dict[str, Any]]], seed: int
) -> None:
    old, new, runs = stores
    fresh = [dict(r, id=str(uuid.uuid4())) for r in runs[:250]]
    hostile = _hostile(runs, "bench-admin")
    # LF, then CRLF from the middle on: chunks are cut at each `\n` as pieces arrive, either way
    lf = b"\n".join([orjson.dumps(r) for r in fresh[:150]] + hostile)
    result = _check_fed(
        old, new, Viewer("bench-admin", "admin"), lf + b"\n\n", seed, (150 + len(hostile)) // 37
    )
    assert result.stored > 150 and result.refused > 40
    crlf = (
        b"\n".join(orjson.dumps(r) for r in fresh[150:200])
        + b"\r\n"
        + b"\r\n".join(orjson.dumps(r) for r in fresh[200:])
    )
    assert _check_fed(old, new, Viewer("bench-admin", "admin"), crlf, seed, 100 // 37).stored == 100


def test_a_fed_body_over_the_item_limit_stores_nothing(
    stores: tuple[Context, Context, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, runs = stores
    monkeypatch.setattr(new.settings, "batch_max_items", 60)
    fresh = [dict(r, id=str(uuid.uuid4())) for r in runs[:61]]
    feed = batch_bulk.NdjsonFeed(new, Viewer("bench-admin", "admin"))
    for piece in _pieces(b"\n".join(orjson.dumps(r) for r in fresh), 3):
        feed.add(piece)
    with pytest.raises(InvalidInput):
        feed.finish()
    assert not _rows(new, [r["id"] for r in fresh])
    # blank lines are not items: 60 runs among them pass
    body = b"\n\n".join(orjson.dumps(r) for r in fresh[:60])
    feed = batch_bulk.NdjsonFeed(new, Viewer("bench-admin", "admin"))
    for piece in _pieces(body, 4):
        feed.add(piece)
    assert feed.finish().stored == 60


def test_a_fed_body_far_over_the_limit_is_not_prepared_past_it(
    stores: tuple[Context, Context, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile body of many small lines: chunks stop being prepared at the limit's worth of
    lines, and the whole body is refused (nothing stored)."""
    _, new, runs = stores
    monkeypatch.setattr(new.settings, "batch_max_items", 100)
    line = orjson.dumps({"flow_id": runs[0]["flow_id"], "status": "success", "execution_time": 1})
    feed = batch_bulk.NdjsonFeed(new, Viewer("bench-admin", "admin"))
    for piece in _pieces(b"\n".join([line] * 5_000), 5):
        feed.add(piece)
    assert len(feed._batch._chunks) == -(-100 // batch_bulk.CHUNK_LINES)  # 3 chunks of 37, not 136
    with pytest.raises(InvalidInput, match="100"):
        feed.finish()


# created_at values and the verdict each gets: a number is epoch seconds (never milliseconds), a
# string is ISO 8601 (a string of digits is refused: "20261201" could be either); a time is
# stored when it is in years 1-9999 once converted to UTC and at most a day ahead
CREATED_AT: list[tuple[Any, datetime | str]] = [
    (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20)),
    (1_700_000_000.25, datetime(2023, 11, 14, 22, 13, 20, 250000)),
    (-5, datetime(1969, 12, 31, 23, 59, 55)),
    (-62_135_596_800, datetime(1, 1, 1)),
    (-62_135_596_800.0, datetime(1, 1, 1)),
    ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1)),
    ("9999-12-31T23:59:59-00:00", "more than a day in the future"),
    (253_402_300_799, "more than a day in the future"),  # 9999-12-31 in seconds (1978 as milliseconds)
    (1_796_573_794_000, "epoch seconds"),  # milliseconds: as seconds, past year 9999
    (4_102_444_800, "more than a day in the future"),  # 2100
    (-62_135_596_801, "epoch seconds"),
    (253_402_300_800, "epoch seconds"),
    (10**20, "epoch seconds"),
    (-(10**20), "epoch seconds"),
    (2**64, "epoch seconds"),
    (1e300, "epoch seconds"),
    ("20261201", "string of digits"),  # an ISO 8601 basic date, or epoch seconds? neither
    ("1700000000", "string of digits"),
    ("-62135596800", "string of digits"),
    ("1700000000.5", "string of digits"),
    ("0001-01-01T00:00:00+01:00", "UTC"),
    ("9999-12-31T23:30:00-01:00", "UTC"),
    ("0001-01-01T00:00:00+23:59", "UTC"),
    ("9999-12-31T23:59:59-23:59", "UTC"),
    ("0001-01-01 00:00:00+01:00", "UTC"),
    ("0001-01-01T00:00+01:00", "UTC"),
    ("0001-01-01T00:00:00.5+0100", "UTC"),
    (True, "created_at"),
]


@pytest.mark.parametrize(("created_at", "expected"), CREATED_AT, ids=[repr(c[0]) for c in CREATED_AT])
@pytest.mark.parametrize("shape", ["ndjson", "array"])
def test_created_at_gets_the_same_verdict_both_ways_and_the_good_items_are_stored(
    stores: tuple[Context, Context, list[dict[str, Any]]],
    created_at: Any,
    expected: datetime | str,
    shape: str,
) -> None:
    """Between three good items, per item (`ingest.ingest_batch`) and in bulk: the item alone is
    refused with a reason naming created_at (a time off the calendar in UTC failed the whole
    chunk as an internal error), or stored at the time it means; the good ones are stored."""
    old, new, runs = stores
    viewer = Viewer("bench-admin", "admin")
    good = {"flow_id": runs[0]["flow_id"], "status": "success", "execution_time": 5}
    items = [good, {**good, "created_at": created_at}, good, good]
    lines = [json.dumps(i).encode() for i in items]  # orjson writes no integer past 64 bits
    before = ingest.ingest_batch(old, viewer, [json.loads(line) for line in lines])
    if shape == "ndjson":
        after = batch_bulk.ingest_ndjson(new, viewer, b"\n".join(lines))
    else:
        body = b"[" + b",".join(lines) + b"]"
        array = batch_bulk.ingest_json_array(new, viewer, body)
        # None: DuckDB would read the body differently (an exponent): the route goes item by item;
        # only then (else the bulk path could give up on every body and this still pass)
        assert (array is None) == (created_at in (10**20, -(10**20), 2**64, 1e300)), array
        after = array if array is not None else ingest.ingest_batch(new, viewer, json.loads(body))
    _compare(old, new, before, after)
    assert [i.status for i in (before.items[0], *before.items[2:])] == ["stored"] * 3, before
    verdict = before.items[1]
    if isinstance(expected, datetime):
        assert verdict.status == "stored", verdict
        assert _rows(old, [verdict.id or ""])[verdict.id or ""]["created_at"] == expected
    else:
        assert verdict.status == "refused", verdict
        assert "created_at" in (verdict.detail or "") and expected in (verdict.detail or ""), verdict


@pytest.mark.parametrize("first", ["per item", "bulk"])
def test_of_an_id_given_twice_the_first_item_is_stored_whichever_path_reads_it(
    stores: tuple[Context, Context, list[dict[str, Any]]], first: str
) -> None:
    """A chunk lists its bulk items before the ones left to the per-item path: when the first of
    two items with one id went the per-item way, the second was stored and the first refused."""
    old, new, runs = stores
    viewer = Viewer("bench-admin", "admin")
    run_id = str(uuid.uuid4())
    item = {"id": run_id, "flow_id": runs[0]["flow_id"], "status": "success", "execution_time": 5}
    item["created_at"] = "2026-12-01T10:00:00Z"
    per_item = orjson.dumps({**item, "meta": {"copy": "per item"}})[:-1] + b', "x": 1e0}'  # an exponent
    bulk = orjson.dumps({**item, "meta": {"copy": "bulk"}})
    lines = [per_item, bulk] if first == "per item" else [bulk, per_item]
    after = _check(old, new, viewer, b"\n".join(lines))
    assert [i.status for i in after.items] == ["stored", "refused"]
    assert orjson.loads(_rows(new, [run_id])[run_id]["meta"]) == {"copy": first}


def test_items_without_created_at_keep_the_batchs_order(
    stores: tuple[Context, Context, list[dict[str, Any]]],
) -> None:
    """One by one each item got the clock's time; in bulk a chunk's items shared one, so the
    list (newest first, then by id: random within a millisecond) answered them shuffled."""
    _, new, runs = stores
    viewer = Viewer("bench-admin", "admin")
    item = {"flow_id": runs[0]["flow_id"], "status": "success", "execution_time": 5}
    lines = [orjson.dumps({**item, "meta": {"n": n}}) for n in range(100)]  # three chunks of 37
    # every 7th goes the per-item way (an exponent): it was stamped when its chunk was prepared,
    # after every bulk item of the batch
    lines = [line[:-1] + b', "x": 1e0}' if n % 7 == 3 else line for n, line in enumerate(lines)]
    result = batch_bulk.ingest_ndjson(new, viewer, b"\n".join(lines))
    ids = [i.id or "" for i in result.items]
    rows = _rows(new, ids)
    times = [rows[run_id]["created_at"] for run_id in ids]
    assert times == sorted(times) and len(set(times)) == len(times)
