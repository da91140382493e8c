"""The connection cap (FLOWHISTORY_MAX_CONNECTIONS), over loopback with a real `flowhistory serve`.

README: "past this many open connections requests answer 503", and errors are JSON `{"detail":
...}` before the app too. uvicorn's `limit_concurrency` refuses once the open connections reach
it, counting the one asking: N served N-1 (1 answered everything 503, /health too), and its
answer was the plain text "Service Unavailable".
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.api.test_slow_clients import BOUND, TunedServer, connect, read_until_closed

GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# held connections stay open for the whole test: no deadline of the server's closes them
TOO_MANY = "the server has too many open connections (FLOWHISTORY_MAX_CONNECTIONS); try again"
QUIET = {"FLOWHISTORY_KEEP_ALIVE_TIMEOUT_S": "600", "FLOWHISTORY_HEADER_TIMEOUT_S": "600"}


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response on a kept-alive connection: status, headers, body."""
    deadline = time.monotonic() + BOUND
    data = b""
    while b"\r\n\r\n" not in data:
        assert time.monotonic() < deadline, data
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        assert time.monotonic() < deadline, data
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-body: {data!r}"
        body += chunk
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("cap", [1, 3])
def test_exactly_max_connections_are_served_and_the_next_is_refused(tmp_path: Path, cap: int) -> None:
    settings = {"FLOWHISTORY_MAX_CONNECTIONS": str(cap), **QUIET}
    with TunedServer(tmp_path / "store.duckdb", settings) as srv:
        held = [connect(srv) for _ in range(cap)]
        try:
            for sock in held:  # each while all N are open (kept alive: still open after its answer)
                sock.sendall(GET_HEALTH)
                status, _, body = read_response(sock)
                assert status == 200, body
            extra = connect(srv)
            try:
                extra.sendall(GET_HEALTH)
                data, _ = read_until_closed(extra, time.monotonic() + BOUND)
                assert data.startswith(b"HTTP/1.1 503"), data
            finally:
                extra.close()
            for sock in held:  # the N are still served
                sock.sendall(GET_HEALTH)
                assert read_response(sock)[0] == 200
        finally:
            for sock in held:
                sock.close()


def test_the_503_past_the_cap_is_json_with_a_detail_and_retry_after(tmp_path: Path) -> None:
    with TunedServer(tmp_path / "store.duckdb", {"FLOWHISTORY_MAX_CONNECTIONS": "1", **QUIET}) as srv:
        held = connect(srv)
        try:
            held.sendall(GET_HEALTH)
            assert read_response(held)[0] == 200
            extra = connect(srv)
            try:
                extra.sendall(GET_HEALTH)
                status, headers, body = read_response(extra)
            finally:
                extra.close()
        finally:
            held.close()
    assert status == 503, body
    assert headers["content-type"] == "application/json", headers
    assert orjson.loads(body) == {"detail": TOO_MANY}
    assert int(headers["retry-after"]) >= 1, headers
    assert headers["connection"] == "close", headers
