"""Requests uvicorn cannot parse are answered as JSON with a `detail`, like every other error.

uvicorn answers them itself, in plain text ("Invalid HTTP request received."), before the app
sees anything; a URL past 64 KiB was one of them (httptools splits URLs with 16-bit offsets).
Over the real `flowhistory serve` on loopback, with raw sockets (a client library would refuse
to send these).
"""

from __future__ import annotations

import re
import socket
import time
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


def test_answers_before_the_app_carry_the_request_id_of_their_access_line(server: LiveServer) -> None:
    """The 400 and 414 written here had no X-Request-ID (the README: every answer has one) and
    their access lines a made-up id the client never saw, timed 0 ms."""
    # the client's id is taken once the parser has read it (when the next header begins)
    bad = (
        b"GET /api/v1/flows/ HTTP/1.1\r\nX-Request-ID: rid-400-sent\r\nHost: x\r\nBad Header Name: 1\r\n\r\n"
    )
    status, headers, _ = exchange(server, bad)
    assert status == 400 and headers["x-request-id"] == "rid-400-sent", headers
    status, headers, _ = exchange(server, get(b"/?q=" + b"a" * MAX_URL_BYTES, "x"))
    assert status == 414 and re.fullmatch("[0-9a-f]{32}", headers["x-request-id"]), headers
    made = headers["x-request-id"]
    deadline = time.monotonic() + TIMEOUT
    while ("rid=" + made not in server.stderr() or "rid=rid-400-sent" not in server.stderr()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    lines = [
        line for line in server.stderr().splitlines() if "rid=rid-400-sent" in line or "rid=" + made in line
    ]
    assert [" 400 " in line for line in lines].count(True) == 1 and len(lines) == 2, lines


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
