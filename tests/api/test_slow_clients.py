"""Slow clients are closed (issue 13 item 4): a real `flowhistory serve` over raw sockets.

Slow headers get a header deadline, a trickling body a minimum rate, and the connection cap
answers 503. The deadlines are set small here; every wait is bounded by a generous safety net
that is never what is asserted.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.factories import bearer, make_execution
from tests.live_server import FLOWHISTORY, LiveServer, free_port, server_env

BOUND = 20.0  # safety net for "closed": far above the 1 s deadlines


class TunedServer(LiveServer):
    """A LiveServer with settings from the environment."""

    def __init__(self, db: Path, settings: dict[str, str]) -> None:
        super().__init__(db)
        self.settings = settings

    def spawn(self) -> subprocess.Popen[bytes]:
        self._starts += 1
        self.port = free_port()
        env = server_env() | {"FLOWHISTORY_SCHEDULER_ENABLED": "false"} | self.settings
        with open(self.stderr_path, "wb") as err, open(self.db.parent / "server.stdout", "ab") as out:
            self.proc = subprocess.Popen(
                [FLOWHISTORY, "serve", "--db", str(self.db), "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self.proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TunedServer]:
    db = tmp_path_factory.mktemp("slow") / "store.duckdb"
    settings = {
        "FLOWHISTORY_HEADER_TIMEOUT_S": "1",
        "FLOWHISTORY_BODY_TIMEOUT_S": "1",
        "FLOWHISTORY_BODY_MIN_RATE": "100",
    }
    with TunedServer(db, settings) as s:
        yield s


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; (data, closed before the deadline)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def trickle(socks: list[socket.socket], payload: bytes, every_s: float, until: float) -> set[int]:
    """Send `payload` a byte at a time to every socket; answers the indexes the server cut off."""
    cut: set[int] = set()
    for byte in payload:
        if time.monotonic() > until or len(cut) == len(socks):
            break
        for i, sock in enumerate(socks):
            if i in cut:
                continue
            try:
                sock.send(bytes([byte]))
            except OSError:
                cut.add(i)
        time.sleep(every_s)
    return cut


def test_slow_headers_are_cut_off_while_others_are_served(server: TunedServer) -> None:
    headers = (
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-Slow-%d: %s\r\n" % (i, b"a" * 20) for i in range(20))
        + b"\r\n"
    )  # ~600 bytes: at 5 bytes/s, two minutes
    slow = [connect(server) for _ in range(50)]
    idle = [connect(server) for _ in range(5)]  # connect and send nothing at all
    try:
        started = time.monotonic()
        deadline = started + BOUND
        # a normal request meanwhile is answered
        trickle(slow, headers[:3], 0.2, deadline)
        assert httpx.get(f"{server.url}/health", timeout=BOUND).json()["status"] == "ok"
        trickle(slow, headers[3:], 0.2, deadline)
        for sock in slow:
            data, closed = read_until_closed(sock, deadline)
            assert closed, "a slow-header connection was still open"
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
            body = orjson.loads(data.split(b"\r\n\r\n", 1)[1])
            assert "headers did not arrive within 1 s" in body["detail"]
        for sock in idle:
            data, closed = read_until_closed(sock, deadline)
            assert closed and data == b""
        assert httpx.get(f"{server.url}/health", timeout=BOUND).status_code == 200
    finally:
        for sock in slow + idle:
            sock.close()


def test_a_slow_second_request_on_a_kept_alive_connection_gets_its_408(server: TunedServer) -> None:
    """The connection's answered first request was taken for the app having the second: the
    slow second request was closed with nothing written, no X-Request-ID and no access line."""
    sock = connect(server)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"ok"' not in first:
            first += sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Request-ID: ka-slow-2\r\nHost: x\r\n")  # never finished
        data, closed = read_until_closed(sock, time.monotonic() + BOUND)
    finally:
        sock.close()
    assert closed and data.startswith(b"HTTP/1.1 408"), data[:300]
    assert b"x-request-id: ka-slow-2\r\n" in data, data[:300]
    deadline = time.monotonic() + BOUND
    while "rid=ka-slow-2" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in server.stderr().splitlines() if "rid=ka-slow-2" in line]
    assert len(lines) == 1 and " 408 " in lines[0], lines


def post_head(flow: str, length: int) -> bytes:
    auth = bearer("admin")["Authorization"]
    return (
        f"POST /api/v1/flows/{flow}/executions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def new_flow(server: LiveServer) -> str:
    r = httpx.post(
        f"{server.url}/api/v1/flows/create",
        json={"name": "slow", "nodes": [], "edges": []},
        headers=bearer("admin"),
        timeout=BOUND,
    )
    r.raise_for_status()
    return str(r.json()["id"])


def stored(server: LiveServer, flow: str) -> int:
    r = httpx.get(f"{server.url}/api/v1/flows/{flow}/executions", headers=bearer("admin"), timeout=BOUND)
    r.raise_for_status()
    return len(r.json())


def test_a_trickling_body_gets_408(server: TunedServer) -> None:
    flow = new_flow(server)
    body = orjson.dumps(make_execution(flow))
    sock = connect(server)
    try:
        sock.sendall(post_head(flow, len(body)))
        deadline = time.monotonic() + BOUND
        cut = trickle([sock], body, 0.1, deadline)  # 10 bytes/s, under the 100 bytes/s minimum
        data, closed = read_until_closed(sock, deadline)
        assert cut or closed
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert b"request body arrived slower than 100 bytes in 1 s" in data
    finally:
        sock.close()
    assert stored(server, flow) == 0


def test_a_slow_but_steady_body_is_accepted(server: TunedServer) -> None:
    """Pauses under the window with enough bytes in each are a normal upload, not an attack."""
    flow = new_flow(server)
    body = orjson.dumps(make_execution(flow))
    pieces = [body[i : i + 200] for i in range(0, len(body), 200)]
    sock = connect(server)
    try:
        sock.sendall(post_head(flow, len(body)))
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.3)
        data, _ = read_until_closed(sock, time.monotonic() + 5)  # kept alive: ends by the bound
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
    finally:
        sock.close()
    assert stored(server, flow) == 1


def test_connections_past_the_cap_answer_503(tmp_path: Path) -> None:
    cap = 8
    with TunedServer(tmp_path / "store.duckdb", {"FLOWHISTORY_MAX_CONNECTIONS": str(cap)}) as srv:
        held = [connect(srv) for _ in range(cap)]
        try:
            time.sleep(0.2)  # let the server accept them (bounded, not asserted)
            r = httpx.get(f"{srv.url}/health", timeout=BOUND)
            assert r.status_code == 503
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + BOUND
        while True:  # the server notices the closes on its next loop turn
            r = httpx.get(f"{srv.url}/health", timeout=BOUND)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 200


def test_settings_reach_the_server() -> None:
    """The settings end up on uvicorn's config and the protocol class."""
    from analytics.core.config import Settings
    from api.server import config_for, protocol_for

    s = Settings(header_timeout_s=3, body_timeout_s=4, body_min_rate=5, max_connections=77)
    proto = protocol_for(s)
    assert (proto.header_timeout_s, proto.body_timeout_s, proto.body_min_rate) == (3, 4, 5)
    assert config_for(object(), s).limit_concurrency == 78  # uvicorn counts the connection asking
