"""Requests uvicorn cannot parse are answered as JSON with a `detail`, like every other error.

uvicorn answers them itself, in plain text ("Invalid HTTP request received."), before the app
sees anything; a URL past 64 KiB was one of them (httptools splits URLs with 16-bit offsets).
Over the real `flowhistory serve` on loopback, with raw sockets (a client library would refuse
to send these).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from api.server import MAX_URL_BYTES
from tests.factories import bearer
from tests.live_server import LiveServer

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("unparsable") / "store.duckdb") as s:
        yield s


def exchange(server: LiveServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(path: bytes, token: str) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + token.encode() + b"\r\n\r\n"


def test_a_url_past_the_parsers_limit_is_a_json_414(server: LiveServer) -> None:
    auth = bearer("alice")["Authorization"]
    status, headers, body = exchange(server, get(b"/api/v1/flows/?q=" + b"a" * MAX_URL_BYTES, auth))
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert "URL is longer than 65535 bytes" in orjson.loads(body)["detail"]
    # the server goes on, and a long URL under the limit reaches the app (which answers it: the
    # route reads no `q`, a 422 naming it)
    long_ok = b"/api/v1/flows/?q=" + b"a" * (MAX_URL_BYTES - 100)
    status, _, body = exchange(server, get(long_ok, auth))
    assert status == 422 and orjson.loads(body)["detail"][0]["loc"] == ["query", "q"]
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/flows/ HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET /api/v1/flows/ HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /api/v1/flows/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ],
    ids=["space-in-header-name", "binary-request-line", "http-9.9", "two-content-lengths"],
)
def test_an_unparsable_request_is_a_json_400(server: LiveServer, request_bytes: bytes) -> None:
    status, headers, body = exchange(server, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "not HTTP/1.1" in orjson.loads(body)["detail"]


def test_nothing_is_stored_from_an_unparsable_post(server: LiveServer) -> None:
    auth = bearer("alice")
    flows = httpx.get(f"{server.url}/api/v1/flows/", headers=auth, timeout=TIMEOUT).json()
    body = b'{"name": "sneaky", "nodes": [], "edges": []}'
    # the first length is the body's own: a server reading it would store the flow
    request = (
        b"POST /api/v1/flows/create HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + auth["Authorization"].encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\nContent-Length: 21\r\n\r\n"
        % len(body)
        + body
    )
    assert exchange(server, request)[0] == 400
    assert httpx.get(f"{server.url}/api/v1/flows/", headers=auth, timeout=TIMEOUT).json() == flows


def test_requests_before_an_unparsable_one_are_answered_first(server: LiveServer) -> None:
    """A valid request and a malformed one in the same packet: only the 400 came back, and a
    pipelining client took it for the valid request's answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GARBAGE\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # each answer's status line, in order
    assert statuses == [b"200", b"200", b"400"]
    assert data.endswith(b'not HTTP/1.1"}')
