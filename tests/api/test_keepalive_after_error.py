"""An error answer leaves the kept-alive connection usable: over a real uvicorn on loopback.

Starlette's ServerErrorMiddleware re-raises after answering a 500, and uvicorn then closes the
transport without `Connection: close`: the client's next request on that connection failed.
The unexpected failure is a route added to the real app here (nothing in the app is expected to
fail, so the test makes one); everything between it and the socket is the production stack.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, bearer
from tests.live_server import free_port

START_TIMEOUT = 30.0


class Boom(Exception):
    """What no handler knows."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("keepalive")
    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=0)
    app: FastAPI = create_app(settings)

    def boom() -> None:
        raise Boom("secret internals: /etc/flowhistory password=hunter2")

    async def boom_async() -> None:
        raise Boom("async secret internals")

    app.add_api_route("/test-only/boom", boom)
    app.add_api_route("/test-only/boom-async", boom_async)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", workers=1)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        for _ in range(int(START_TIMEOUT / 0.05)):
            if uv.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert uv.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def _conn(r: httpx.Response) -> object:
    """The client-side address of the connection a response came on: equal means the same one."""
    return r.extensions["network_stream"].get_extra_info("client_addr")


@pytest.mark.parametrize("path", ["/test-only/boom", "/test-only/boom-async"])
def test_a_500_leaves_the_connection_usable(server: str, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.Client(base_url=server, timeout=10.0) as client:
        first = client.get("/health")
        assert first.status_code == 200

        with caplog.at_level(logging.ERROR):
            r = client.get(path)
        assert r.status_code == 500
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {"detail": "internal error"}  # nothing internal leaks
        assert r.headers.get("connection", "").lower() != "close"
        assert any(rec.exc_info and isinstance(rec.exc_info[1], Boom) for rec in caplog.records), (
            "the traceback is logged"
        )

        after = client.get("/api/v1/users/me", headers=bearer("admin"))
        assert after.status_code == 200 and after.json()["id"] == "admin"
        assert _conn(first) == _conn(r) == _conn(after), "one kept-alive connection throughout"


def test_a_500_then_the_next_request_on_the_same_socket(server: str) -> None:
    """Raw bytes: no client pool can quietly reconnect."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10.0) as sock:
        f = sock.makefile("rb")
        for path, status in [("/test-only/boom", 500), ("/health", 200), ("/test-only/boom", 500)]:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = _read_head(f)
            assert head[0].split()[1] == str(status).encode(), head
            length = next(int(v) for k, v in _headers(head) if k == b"content-length")
            f.read(length)
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert _read_head(f)[0].split()[1] == b"200"


# Raw paths httpx would normalize ("." and ".." segments), straight to uvicorn.
RAW_HOSTILE = [
    "/static/../../../../etc/passwd",
    "/static/./../app.py",
    "/static/index.html/.",
    "/static/js/..",
    "/../../etc/passwd",
    "/api/v1/../../etc/passwd",
    "/static/%00",
    "/static/" + "x" * 4000,
]


def test_hostile_raw_paths_on_one_connection(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10.0) as sock:
        f = sock.makefile("rb")
        for path in RAW_HOSTILE:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = _read_head(f)
            assert head[0].split()[1] in (b"400", b"404"), (path[:60], head)
            headers = dict(_headers(head))
            assert headers[b"content-type"].startswith(b"application/json"), (path[:60], head)
            body = f.read(int(headers[b"content-length"]))
            assert b"root:" not in body and b'"detail"' in body, body


def _read_head(f: socket.SocketIO | object) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = f.readline()  # type: ignore[attr-defined]
        assert line, f"connection closed by the server after {lines!r}"
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.rstrip(b"\r\n"))


def _headers(head: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [(k.strip().lower(), v.strip()) for k, _, v in (h.partition(b":") for h in head[1:])]
