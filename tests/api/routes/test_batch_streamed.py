"""The NDJSON batch is read as it streams in (a real `flowhistory serve` over loopback).

Chunks of 2,500 lines are prepared while the rest of the body still arrives; nothing is stored
until the whole body is in. A chunked upload of three chunks' worth is stored whole, with
refusals numbered by their line; a client that goes away mid-body leaves nothing behind.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from analytics.history import batch_bulk
from tests.factories import bearer
from tests.live_server import LiveServer
from tests.test_durability import create_flow, stats

OWNER = bearer("owner")
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("streamed") / "store.duckdb") as s:
        yield s


def _lines(flow_id: str, n: int) -> list[bytes]:
    return [
        orjson.dumps(
            {"id": str(uuid.uuid4()), "flow_id": flow_id, "status": "success", "execution_time": i,
             "node_results": {"model_1_a": {"modelId": "gpt-4o", "0": "h", "1": "i"}}}
        )
        for i in range(n)
    ]  # fmt: skip


def test_a_streamed_body_of_many_chunks_is_stored_whole(server: LiveServer) -> None:
    flow_id = create_flow(server.url)
    n = 3 * batch_bulk.CHUNK_LINES + 17
    lines = _lines(flow_id, n)
    lines[4_000] = b'{"flow_id": "' + flow_id.encode() + b'", "status": "running"'  # not JSON

    def pieces() -> Iterator[bytes]:  # a chunked upload, 64 KiB at a time
        body = b"\n".join(lines)
        for at in range(0, len(body), 65_536):
            yield body[at : at + 65_536]

    with httpx.Client(base_url=server.url, headers=OWNER | NDJSON, timeout=60) as client:
        r = client.post("/api/v1/executions/batch", content=pieces())
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["stored"], out["refused"]) == (n - 1, 1)
        assert out["items"][4_000]["detail"].startswith("line 4001 is not JSON")
        assert [i["index"] for i in out["items"]] == list(range(n))
        assert stats(client, flow_id)["total_executions"] == n - 1


def test_a_client_gone_mid_body_stores_nothing(server: LiveServer) -> None:
    flow_id = create_flow(server.url)
    lines = _lines(flow_id, 3 * batch_bulk.CHUNK_LINES)
    body = b"\n".join(lines)
    sent = body[: len(body) * 9 // 10]  # two chunks' lines and more: cut and prepared, never stored
    head = (
        f"POST /api/v1/executions/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {OWNER['Authorization']}\r\nContent-Type: application/x-ndjson\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + sent)
        time.sleep(1.0)  # the server reads what came and prepares the chunks it holds
    with httpx.Client(base_url=server.url, headers=OWNER | NDJSON, timeout=60) as client:
        for _ in range(10):  # the abandoned request winds down; nothing of it is ever stored
            assert stats(client, flow_id)["total_executions"] == 0
            time.sleep(0.2)
        # the server goes on: the same runs, sent whole, are all stored
        r = client.post("/api/v1/executions/batch", content=body)
        assert r.status_code == 200 and r.json()["stored"] == len(lines), r.text[:300]
        assert stats(client, flow_id)["total_executions"] == len(lines)


def test_a_json_body_is_told_apart_after_pieces_of_whitespace(server: LiveServer) -> None:
    """With a JSON content type, the first byte past whitespace decides: `[` is an array, else
    the body is read as NDJSON; whitespace may come in pieces of its own before it."""
    flow_id = create_flow(server.url)
    array, line = _lines(flow_id, 2)
    json_type = {"Content-Type": "application/json"}

    def pieces(body: bytes) -> Iterator[bytes]:
        yield from (b"  ", b"\n", b"\t\r\n", body[:1], body[1:])

    with httpx.Client(base_url=server.url, headers=OWNER | json_type, timeout=60) as client:
        r = client.post("/api/v1/executions/batch", content=pieces(b"[" + array + b"]"))
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        r = client.post("/api/v1/executions/batch", content=pieces(line))
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        r = client.post("/api/v1/executions/batch", content=pieces(b"[" + array + b"]"))  # stored already
        assert r.json()["items"][0]["detail"].endswith("already exists"), r.text
        assert stats(client, flow_id)["total_executions"] == 2
