"""HEAD answers as the GET it asks about, without a body (RFC 9110 9.3.2): it was a 405 on every
route. Over a real `flowhistory serve` on loopback, where uvicorn frames the answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import SECRET, bearer, create_token
from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("head")
    live = LiveServer(folder / "store.duckdb").start()
    try:
        yield live
    finally:
        live.kill()


def _raw(server: LiveServer, request: bytes) -> bytes:
    """The bytes the server sends for `request` on a connection it then closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/health", "/api/v1/flows/", "/api/v1/users/me"])
def test_head_is_the_get_without_its_body(server: LiveServer, path: str) -> None:
    auth = bearer("admin")
    get = httpx.get(server.url + path, headers=auth)
    assert get.status_code == 200 and get.content
    head = httpx.head(server.url + path, headers=auth)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    # on the wire: the status line and headers, then nothing (the connection closes cleanly)
    raw = _raw(
        server,
        f"HEAD {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    head_part, _, rest = raw.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 200") and rest == b""


def test_head_keeps_the_get_s_refusals(server: LiveServer) -> None:
    assert httpx.head(server.url + "/api/v1/flows/").status_code == 401
    missing = httpx.head(server.url + "/api/v1/flows/no-such-flow", headers=bearer("admin"))
    assert missing.status_code == 404 and missing.content == b""


def test_head_of_a_route_without_get_is_405(server: LiveServer) -> None:
    url = server.url + "/api/v1/executions/batch"
    assert httpx.get(url, headers=bearer("admin")).status_code == 405
    assert httpx.head(url, headers=bearer("admin")).status_code == 405


def test_the_token_cookie_counts_on_head_as_on_get(server: LiveServer) -> None:
    """README: Open WebUI's `token` cookie counts on HEAD as on GET."""
    cookie = {"Cookie": f"token={create_token(SECRET, 'admin')}"}
    assert httpx.get(server.url + "/api/v1/users/me", headers=cookie).status_code == 200
    assert httpx.head(server.url + "/api/v1/users/me", headers=cookie).status_code == 200
