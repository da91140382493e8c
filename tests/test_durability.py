"""Acknowledged means durable: SIGKILL the real server mid-stream, restart it, count.

A run answered 200 was committed before the answer (group commit acks after COMMIT), so it must
survive `kill -9`. Nothing may be half-written: a run's per-node facts commit with it, and a
batch commits whole or not at all. Runs the server committed but never answered (killed between
COMMIT and the response) may be there too, so totals are compared with `>=` against acks and
with `==` against the rows actually stored.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from analytics.core.config import Settings
from analytics.core.context import open_context
from tests.factories import SECRET, bearer, make_execution
from tests.live_server import LiveServer

WRITERS = 8
WRITE_SECONDS = 1.2  # how long to write before the kill (a duration, never asserted)
MIN_ACKS = 20  # do not kill before some writes were acknowledged
MAX_REQUESTS_PER_WRITER = 20_000  # bounds every writer loop
BATCH_SIZE = 40
STATUSES = ("success", "error", "aborted")
OWNER = bearer("owner")
JSON_TYPE = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Sent:
    id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class SentBatch:
    ids: tuple[str, ...]
    bodies: tuple[dict[str, Any], ...]


@dataclass
class Outcome:
    acked: list[Any]
    sent: list[Any]
    failures: list[str]


def run_body(flow_id: str, rng: random.Random, tag: str) -> dict[str, Any]:
    """A run as the editor sends it, with 2-5 nodes so node_count differs between runs."""
    status = rng.choice(STATUSES)
    run = make_execution(flow_id, text=f"run {tag}", status=status, execution_time=rng.randint(0, 10**6))
    nodes = dict(run["node_results"])
    for j in range(rng.randint(0, 3)):
        nodes[f"tool_{j}_{tag}"] = {"value": j, "usage": {"prompt_tokens": j, "completion_tokens": 2 * j}}
    run["node_results"] = nodes
    run["outputs"] = nodes
    if status == "error":
        run["errors"] = {"model_1739905519876_k3j9x2abq": f"rate limited {tag}"}
    return run


def create_flow(url: str) -> str:
    r = httpx.post(
        f"{url}/api/v1/flows/create", json={"name": "durable", "nodes": [], "edges": []}, headers=OWNER
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def post_runs(url: str, flow_id: str, stop: threading.Event, out: Outcome, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers=OWNER, timeout=30.0) as client:
        for i in range(MAX_REQUESTS_PER_WRITER):
            if stop.is_set():
                return
            body = run_body(flow_id, rng, f"{seed}-{i}")
            try:
                r = client.post(f"/api/v1/flows/{flow_id}/executions", json=body)
            except httpx.HTTPError:
                return  # the server was killed under this request: not acknowledged
            if r.status_code != 200:
                out.failures.append(f"{r.status_code} {r.text[:300]}")
                return
            out.acked.append(Sent(r.json()["id"], body))


def post_batches(url: str, flow_id: str, stop: threading.Event, out: Outcome, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers=OWNER, timeout=30.0) as client:
        for i in range(MAX_REQUESTS_PER_WRITER):
            if stop.is_set():
                return
            bodies = []
            for j in range(BATCH_SIZE):
                body = run_body(flow_id, rng, f"{seed}-{i}-{j}")
                body["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                bodies.append(body)
            batch = SentBatch(tuple(b["id"] for b in bodies), tuple(bodies))
            out.sent.append(batch)  # recorded before sending: it may or may not arrive
            try:
                r = client.post("/api/v1/executions/batch", content=orjson.dumps(bodies), headers=JSON_TYPE)
            except httpx.HTTPError:
                return
            answer = r.json() if r.status_code == 200 else None
            if answer is None or answer["stored"] != BATCH_SIZE or answer["refused"] != 0:
                out.failures.append(f"{r.status_code} {r.text[:300]}")
                return
            if [item["id"] for item in answer["items"]] != list(batch.ids):
                out.failures.append(f"batch answered other ids: {answer['items'][:3]}")
                return
            out.acked.append(batch)


def write_then_kill(server: LiveServer, flow_id: str, writer: Callable[..., None], seed: int) -> Outcome:
    """WRITERS threads write until the server is SIGKILLed under them."""
    out = Outcome([], [], [])
    stop = threading.Event()
    threads = [
        threading.Thread(target=writer, args=(server.url, flow_id, stop, out, seed * 100 + n), daemon=True)
        for n in range(WRITERS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(out.acked) < MIN_ACKS and not out.failures and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(WRITE_SECONDS)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer thread did not finish"
    assert not out.failures, out.failures[:5]
    assert len(out.acked) >= MIN_ACKS, f"only {len(out.acked)} writes were acknowledged before the kill"
    return out


def listed_ids(client: httpx.Client, flow_id: str) -> list[str]:
    """Every execution id of the flow, read from the table through the cursor list."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": 500}
        if cursor is not None:
            params["cursor"] = cursor
        r = client.get(f"/api/v1/flows/{flow_id}/executions/list", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursor list never ended")


def stats(client: httpx.Client, flow_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/flows/{flow_id}/executions/stats")
    assert r.status_code == 200, r.text
    return r.json()


def check_details(url: str, flow_id: str, runs: list[Sent]) -> None:
    """GET detail of each acknowledged run answers what was sent."""

    def check(chunk: list[Sent]) -> list[str]:
        problems = []
        with httpx.Client(base_url=url, headers=OWNER, timeout=30.0) as client:
            for run in chunk:
                r = client.get(f"/api/v1/flows/{flow_id}/executions/{run.id}")
                if r.status_code != 200:
                    problems.append(f"{run.id}: {r.status_code} {r.text[:200]}")
                    continue
                got = r.json()
                for key in ("status", "execution_time", "node_results", "outputs", "inputs", "errors"):
                    if got[key] != run.body[key]:
                        problems.append(f"{run.id}: {key} is {got[key]!r}, sent {run.body[key]!r}")
        return problems

    chunks = [runs[i::WRITERS] for i in range(WRITERS)]
    with ThreadPoolExecutor(WRITERS) as pool:
        problems = [p for found in pool.map(check, chunks) for p in found]
    assert not problems, f"{len(problems)} acknowledged runs differ or are missing: {problems[:5]}"


def check_store(db: Path, flow_id: str, expected_total: int, runs: list[Sent]) -> None:
    """After the server stopped: rows, node facts and the content of every acknowledged run."""
    with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
        conn = ctx.store.cursor()
        total = conn.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [flow_id]).fetchall()[0][0]
        assert total == expected_total
        half_written = conn.execute(
            """
            SELECT e.id::VARCHAR, e.node_count, count(n.execution_id)
            FROM executions e LEFT JOIN execution_nodes n ON n.execution_id = e.id
            GROUP BY ALL HAVING e.node_count <> count(n.execution_id)
            """
        ).fetchall()
        assert half_written == [], f"executions without all their node facts: {half_written[:5]}"
        orphans = conn.execute(
            "SELECT count(*) FROM execution_nodes WHERE execution_id NOT IN (SELECT id FROM executions)"
        ).fetchall()[0][0]
        assert orphans == 0, "node facts of an execution that is not stored"
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id::VARCHAR, status, execution_time, node_results, node_count FROM executions"
                " WHERE flow_id = ?",
                [flow_id],
            ).fetchall()
        }
    missing = [run.id for run in runs if run.id not in rows]
    assert not missing, f"{len(missing)} of {len(runs)} acknowledged runs are gone: {missing[:5]}"
    wrong = [
        run.id
        for run in runs
        if rows[run.id][:2] != (run.body["status"], run.body["execution_time"])
        or orjson.loads(rows[run.id][2]) != run.body["node_results"]
        or rows[run.id][3] != len(run.body["node_results"])
    ]
    assert not wrong, f"acknowledged runs stored differently from what was sent: {wrong[:5]}"


def test_acknowledged_runs_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    server = LiveServer(db, "durability").start()
    try:
        flow_id = create_flow(server.url)
        acked: list[Sent] = []
        for cycle in range(3):
            out = write_then_kill(server, flow_id, post_runs, seed=cycle)
            acked += out.acked
            assert len({r.id for r in acked}) == len(acked), "two acknowledgements carried the same id"

            server.start()  # on the same store: the WAL replays
            check_details(server.url, flow_id, out.acked)
            with httpx.Client(base_url=server.url, headers=OWNER, timeout=30.0) as client:
                ids = listed_ids(client, flow_id)
                s = stats(client, flow_id)
            assert len(set(ids)) == len(ids)
            missing = {r.id for r in acked} - set(ids)
            assert not missing, f"cycle {cycle}: acknowledged runs missing after restart: {list(missing)[:5]}"
            assert s["total_executions"] >= len(acked)
            assert s["total_executions"] == len(ids), "stats disagree with the rows stored"
            assert s["success_count"] + s["error_count"] + s["aborted_count"] == s["total_executions"]
        server.stop()  # graceful: uvicorn shuts down, then re-raises SIGTERM
        check_store(db, flow_id, s["total_executions"], acked)
    finally:
        server.kill()


def test_batches_survive_sigkill_whole_or_not_at_all(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    server = LiveServer(db, "batch").start()
    try:
        flow_id = create_flow(server.url)
        acked: list[SentBatch] = []
        sent: list[SentBatch] = []
        for cycle in range(2):
            out = write_then_kill(server, flow_id, post_batches, seed=10 + cycle)
            acked += out.acked
            sent += out.sent

            server.start()
            with httpx.Client(base_url=server.url, headers=OWNER, timeout=30.0) as client:
                present = set(listed_ids(client, flow_id))
                s = stats(client, flow_id)
            lost = [b.ids[0] for b in acked if not set(b.ids) <= present]
            assert not lost, f"cycle {cycle}: {len(lost)} acknowledged batches not fully present"
            partial = [
                (sum(i in present for i in b.ids), len(b.ids))
                for b in sent
                if 0 < sum(i in present for i in b.ids) < len(b.ids)
            ]
            assert not partial, f"half-stored batches (stored, size): {partial[:5]}"
            assert s["total_executions"] == len(present) >= len(acked) * BATCH_SIZE
        last = acked[-1]
        check_details(server.url, flow_id, [Sent(i, b) for i, b in zip(last.ids, last.bodies, strict=True)])
        server.stop()  # graceful: uvicorn shuts down, then re-raises SIGTERM
        runs = [Sent(i, body) for b in acked for i, body in zip(b.ids, b.bodies, strict=True)]
        check_store(db, flow_id, s["total_executions"], runs)
    finally:
        server.kill()


BIG_BATCH = 60_000  # several seconds of work, past the 3 s uvicorn gives requests in flight


def test_a_batch_cut_short_by_sigterm_says_which_items_it_stored(tmp_path: Path) -> None:
    """SIGTERM while a long batch was being stored: uvicorn cancelled it after its 3 s, the client
    got a 500, and 17,500 of 30,000 runs were stored with no word of which (a retry duplicated
    them). Now no chunk is stored once the server is stopping: the answer comes in time and says
    exactly which items were stored."""
    from analytics.history.batch_bulk import STOPPING

    db = tmp_path / "store.duckdb"
    server = LiveServer(db, "sigterm-batch").start()
    try:
        flow_id = create_flow(server.url)
        ids = [str(uuid.uuid4()) for _ in range(BIG_BATCH)]
        lines = [
            orjson.dumps(
                {
                    "id": run_id,
                    "flow_id": flow_id,
                    "status": "success",
                    "inputs": {"q": i},
                    "node_results": {"n1": {"status": "success", "text": "ok"}},
                    "execution_time": 5,
                    "created_at": 1_767_225_600 + i,
                }
            )
            for i, run_id in enumerate(ids)
        ]
        body = b"\n".join(lines)
        sent = threading.Event()

        def pieces() -> Any:
            for at in range(0, len(body), 1 << 20):
                yield body[at : at + (1 << 20)]
            sent.set()

        answer: list[httpx.Response] = []

        def post() -> None:
            headers = {**OWNER, "Content-Type": "application/x-ndjson"}
            answer.append(
                httpx.post(
                    f"{server.url}/api/v1/executions/batch", content=pieces(), headers=headers, timeout=120
                )
            )

        client = threading.Thread(target=post)
        client.start()
        assert sent.wait(60)
        time.sleep(0.3)  # the server has the whole body: it is storing chunks
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        client.join(120)
        assert server.proc.wait(timeout=30) in (0, -15)
        [r] = answer
        assert r.status_code == 200, r.text[:300]
        items = r.json()["items"]
        assert len(items) == BIG_BATCH
        stored = {ids[i["index"]] for i in items if i["status"] == "stored"}
        refused = [i for i in items if i["status"] != "stored"]
        assert all(i["detail"] == STOPPING for i in refused), refused[:3]
        with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
            rows = ctx.store.cursor().execute("SELECT id::VARCHAR FROM executions").fetchall()
        assert {r[0] for r in rows} == stored
    finally:
        server.kill()


def test_a_request_cut_off_by_the_stop_is_answered_in_json(tmp_path: Path) -> None:
    """Past the grace SIGTERM gives requests in flight, uvicorn cancels them: a batch whose body
    was still arriving (a long export or query alike) got a plain-text 500 and a traceback in
    the log. It is a JSON 503 that says the server is stopping, and nothing of it is stored."""
    import socket
    from urllib.parse import urlsplit

    from api.errors import CUT_OFF

    db = tmp_path / "store.duckdb"
    server = LiveServer(db, "sigterm-slow-body").start()
    try:
        flow_id = create_flow(server.url)
        line = orjson.dumps({"flow_id": flow_id, "status": "success", "execution_time": 1}) + b"\n"
        at = urlsplit(server.url)
        sock = socket.create_connection((at.hostname, at.port), timeout=30)
        head = (
            f"POST /api/v1/executions/batch HTTP/1.1\r\nHost: {at.netloc}\r\n"
            f"Authorization: {OWNER['Authorization']}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {len(line) * 10_000}\r\n\r\n"
        )
        sock.sendall(head.encode() + line * 20)
        time.sleep(0.5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        answer = b""
        try:
            for _ in range(40):  # a trickle, fast enough for the body timeout, too slow to end
                sock.sendall(line * 5)
                time.sleep(0.25)
        except OSError:
            pass
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        assert server.proc.wait(timeout=30) in (0, -15)
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 503"), answer[:300]
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert b"content-type: application/json" in headers.lower()
        assert orjson.loads(body) == CUT_OFF
        assert "Exception in ASGI application" not in server.stderr()
        with open_context(Settings(db_path=db, webui_secret_key=SECRET)) as ctx:
            assert ctx.store.cursor().execute("SELECT count(*) FROM executions").fetchall() == [(0,)]
    finally:
        server.kill()
