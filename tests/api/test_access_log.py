"""Access and server logs of a real `flowhistory serve`: one line per request, no secrets, JSON
lines on request, library warnings once."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api.observability.logs import TextFormatter
from tests import live_server
from tests.factories import SECRET, bearer, make_execution
from tests.live_server import FLOWHISTORY, LiveServer

WARNING_TEXT = "Arrow output on a DB-API result"  # DuckDB's, raised by every /cost request


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWHISTORY_")}
        base.update({"WEBUI_SECRET_KEY": SECRET, "FLOWHISTORY_SCHEDULER_ENABLED": "false", **env})
        monkeypatch.setattr(live_server, "server_env", lambda: base)
        folder = tmp_path / f"s{len(servers)}"
        folder.mkdir()
        server = LiveServer(folder / "store.duckdb").start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.kill()


def exercise(server: LiveServer) -> tuple[str, str]:
    """Requests with a known token and a secret-looking query string; the token and flow id."""
    token = bearer("admin")["Authorization"].removeprefix("Bearer ")
    h = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        flow = c.post("/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=h).json()[
            "id"
        ]
        r = c.post(
            f"/api/v1/flows/{flow}/executions",
            json=make_execution(flow, text="PAYLOAD-SHOULD-NOT-BE-LOGGED"),
            headers={**h, "X-Request-ID": "req-42"},
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        # a token in the query string (no route reads one: a 422) is never logged
        assert c.get("/api/v1/flows/?token=QUERY-SECRET-123", headers=h).status_code == 422
        assert (
            c.get(f"/api/v1/flows/{flow}/executions", headers={"Authorization": "Bearer bad"}).status_code
            == 401
        )
        for _ in range(5):
            cost = c.get("/api/v1/cost?start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z", headers=h)
            assert cost.status_code == 200
    return token, flow


def test_text_access_lines(serve: Callable[..., LiveServer]) -> None:
    server = serve()
    token, flow = exercise(server)
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its clean shutdown
    err = server.stderr()
    for secret in (token, "QUERY-SECRET-123", "PAYLOAD-SHOULD-NOT-BE-LOGGED", "Bearer bad"):
        assert secret not in err
    lines = [ln for ln in err.splitlines() if "flowhistory.access" in ln]
    post = [ln for ln in lines if "rid=req-42" in ln]
    assert len(post) == 1
    assert "POST /api/v1/flows/{flow_id}/executions 200 " in post[0] and "user=admin" in post[0]
    assert flow not in "\n".join(lines)  # the route template, not the path
    assert any("/api/v1/flows/{flow_id}/executions 401 " in ln and "user=-" in ln for ln in lines)
    # one line per request: flow create, POST, list, 401, 5 x cost (and the health polls)
    assert len([ln for ln in lines if "/health" not in ln]) == 9
    assert err.count(WARNING_TEXT) == 1  # five requests raised it, one line says so
    assert "started: serving" in err and "stopped: store closed" in err
    assert "uvicorn.access" not in err and '" 200 OK' not in err  # uvicorn's own access log stays off


def test_json_lines(serve: Callable[..., LiveServer]) -> None:
    server = serve(FLOWHISTORY_LOG_FORMAT="json")
    token, _ = exercise(server)
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its clean shutdown
    err = server.stderr()
    assert token not in err and "QUERY-SECRET-123" not in err and "sk-" not in err  # the admin key too
    records = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "flowhistory.access"]
    post = [r for r in access if r.get("request_id") == "req-42"]
    assert len(post) == 1
    assert post[0]["route"] == "/api/v1/flows/{flow_id}/executions"
    assert (post[0]["method"], post[0]["status"], post[0]["user_id"]) == ("POST", 200, "admin")
    assert post[0]["duration_ms"] > 0
    assert len({r["request_id"] for r in access}) == len(access)  # generated ids are distinct
    assert sum(WARNING_TEXT in r["message"] for r in records) == 1
    messages = [r["message"] for r in records if r["logger"] == "flowhistory"]
    assert any(m.startswith("started: serving") for m in messages)
    assert any(m.startswith("stopped") for m in messages)


def test_access_log_off(serve: Callable[..., LiveServer]) -> None:
    server = serve(FLOWHISTORY_ACCESS_LOG="false")
    exercise(server)
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its clean shutdown
    assert "flowhistory.access" not in server.stderr()


def _requests_by_status(server: LiveServer, route: str) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", headers=bearer("admin"), timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flowhistory_http_requests_total{") and f'route="{route}"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return out


def test_a_client_gone_mid_body_is_a_499_not_a_server_error(serve: Callable[..., LiveServer]) -> None:
    """A client that announces a body and hangs up, or whose body the server cuts off as
    malformed, was logged as an unhandled error and counted as a 500: anyone could raise the
    server-error rate (and its alerts) without a credential."""
    server = serve(FLOWHISTORY_LOG_FORMAT="json")
    h = bearer("admin")
    flow = httpx.post(
        f"{server.url}/api/v1/flows/create", json={"name": "f", "nodes": [], "edges": []}, headers=h
    ).json()["id"]
    head = (
        f"POST /api/v1/flows/{flow}/executions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {h['Authorization']}\r\nContent-Type: application/json\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:  # hangs up mid-body
        sock.sendall(head + b'Content-Length: 1000\r\n\r\n{"status": "succ')
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:  # a malformed chunk
        sock.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"sta\r\nzz\r\n')
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    deadline = time.monotonic() + 20
    while (
        sum(_requests_by_status(server, "<unmatched>").values())
        + sum(_requests_by_status(server, "/api/v1/flows/{flow_id}/executions").values())
        < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    for route in ("<unmatched>", "/api/v1/flows/{flow_id}/executions"):
        assert "500" not in _requests_by_status(server, route)
    assert server.stop() in (0, -15)
    records = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    posts = [r for r in records if r["logger"] == "flowhistory.access" and r.get("method") == "POST"]
    assert sorted(r["status"] for r in posts) == [200, 499, 499]  # the flow's create, then the two
    assert not [r for r in records if r["level"] == "ERROR"], [r["message"] for r in records]


def test_no_request_can_start_a_line_of_the_text_log(serve: Callable[..., LiveServer]) -> None:
    """A user id or a path holding a newline was written as it came: a token for `x\\n<forged
    access line>` (accepted, the user created on first sight) or an admin-made user forged lines."""
    server = serve(FLOWHISTORY_ADMIN_USER_IDS='["admin"]')
    forged = "2026-12-06 10:00:00,000 INFO flowhistory.access: GET /api/v1/users 200 1.0ms user=admin"
    made = httpx.post(f"{server.url}/api/v1/users", json={"id": f"x\n{forged}"}, headers=bearer("admin"))
    assert made.status_code == 422 and "control characters" in made.text
    me = httpx.get(f"{server.url}/api/v1/users/me", headers=bearer(f"x\n{forged}"))
    assert me.status_code == 401 and "control characters" in me.text
    assert server.stop() in (0, -15)
    err = server.stderr()
    assert not [line for line in err.splitlines() if line.startswith(forged[:23]) and "user=admin" in line]


def test_the_text_format_writes_control_characters_as_escapes() -> None:
    """Whatever a message holds (a path, an id, a library's text), it stays on its line."""
    record = logging.LogRecord(
        "x", logging.INFO, "p", 1, "user=%s path=%s", ("a\nb\r\x1b", "/x\u2028y"), None
    )
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO user=a\\x0ab\\x0d\\x1b path=/x\\u2028y"


def test_a_traceback_in_the_text_format_stays_on_its_records_line() -> None:
    """README: "every record is one line"; an error's traceback came after it on ~90 lines."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "p", 1, "unhandled error", (), sys.exc_info())
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line
    assert line.startswith("ERROR unhandled error\\x0aTraceback") and line.endswith("ValueError: boom")


def test_answers_the_server_writes_itself_are_logged_and_counted(serve: Callable[..., LiveServer]) -> None:
    """400 (not HTTP), 414 (URL too long) and 408 (headers too slow) are written by the protocol
    before the app sees the request: they had no access line and no count."""
    server = serve(FLOWHISTORY_ADMIN_USER_IDS='["admin"]', FLOWHISTORY_HEADER_TIMEOUT_S="1")
    sent = [
        b"GET /api/v1/flows/ HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/v1/flows/?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/flows/ HTTP/1.1\r\nHost: x\r\n",  # the headers never end
        b"GARBAGE\r\n\r\n",  # no method: was logged and counted as DELETE (httptools' default)
    ]
    for raw in sent:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            sock.sendall(raw)
            answer = sock.recv(65536)
            assert answer.split(b" ", 2)[1] in (b"400", b"414", b"408"), answer[:80]
    counted = _requests_by_status(server, "<unmatched>")
    assert (counted.get("400"), counted.get("414"), counted.get("408")) == (2.0, 1.0, 1.0), counted
    metrics = httpx.get(f"{server.url}/metrics", headers=bearer("admin"), timeout=30).text
    assert 'method="-",route="<unmatched>",status="400"' in metrics
    assert 'method="DELETE"' not in metrics
    assert server.stop() in (0, -15)
    lines = [line for line in server.stderr().splitlines() if "flowhistory.access" in line]
    for status in (400, 414, 408):
        assert [line for line in lines if f"<unmatched> {status} " in line], (status, lines)
    assert [line for line in lines if "- <unmatched> 400 " in line], lines
    assert not [line for line in lines if "DELETE" in line], lines


def test_a_server_that_cannot_bind_never_says_it_started(tmp_path: Path) -> None:
    """The start line and banner came from the app's startup, before uvicorn binds: a port in use
    logged "started: serving" (and a first start's key) for a server that never ran."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [FLOWHISTORY, "serve", "--db", str(tmp_path / "store.duckdb"), "--port", str(port)],
            env={k: v for k, v in live_server.server_env().items() if k != "FLOWHISTORY_PORT"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower(), done.stderr
    assert "started: serving" not in done.stderr and "is serving" not in done.stderr, done.stderr


def test_a_channel_url_is_never_logged(serve: Callable[..., LiveServer]) -> None:
    """A Slack URL is the channel's credential and a webhook URL may carry a token: httpx logged
    each delivery's whole URL at INFO ("HTTP Request: POST http://...")."""
    received: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        server = serve(
            FLOWHISTORY_ADMIN_USER_IDS='["admin"]',
            FLOWHISTORY_ALERT_WEBHOOK_ALLOW='["127.0.0.1"]',
            FLOWHISTORY_LOG_LEVEL="DEBUG",
        )
        base = f"http://127.0.0.1:{receiver.server_port}"
        channels = [
            {"name": "hook", "url": f"{base}/hook?token=HOOK-SECRET-7", "secret": "s" * 20},
            {"name": "slack", "kind": "slack", "url": f"{base}/services/T0/B0/SLACK-SECRET-8"},
        ]
        with httpx.Client(base_url=server.url, headers=bearer("admin"), timeout=30) as c:
            for body in channels:
                channel = c.post("/api/v1/alerts/channels", json=body)
                assert channel.status_code == 201, channel.text
                sent = c.post(f"/api/v1/alerts/channels/{channel.json()['id']}/test")
                assert sent.status_code == 200 and sent.json()["ok"] is True, sent.text
        assert len(received) == 2
        assert server.stop() in (0, -15)
        log = server.stderr()
        assert "/hook" not in log and "HOOK-SECRET-7" not in log and "SLACK-SECRET-8" not in log, log
    finally:
        receiver.shutdown()


def test_the_start_banner_says_where_the_dashboard_is(serve: Callable[..., LiveServer]) -> None:
    """A new user after `make run` saw the key and a curl line, nothing of the dashboard."""
    server = serve()
    assert server.stop() in (0, -15)
    banner = server.stderr()
    assert f"Dashboard: http://127.0.0.1:{server.port}/  (sign in with that key" in banner, banner
