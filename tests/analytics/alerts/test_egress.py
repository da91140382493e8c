"""SSRF: webhooks reach only public addresses unless the admin allows more, and never echo answers.

Every request here goes to 127.0.0.1 only: refused addresses must be refused before any
connection, so the private, link-local and metadata URLs below are never dialled (a receiver on
loopback counts what does arrive). Resolution is the machine's own (`localhost`), except where a
resolver answering two addresses is needed: no DNS server here can be made to answer so.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.alerts import egress
from analytics.alerts import repository as repo
from analytics.alerts.webhooks import utc_now
from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, bearer

CHANNELS = "/api/v1/alerts/channels"
LEAK = "TOP-SECRET-INTERNAL-ANSWER"


@dataclass
class Receiver:
    """Records each request; answers `status` with `headers` and a body holding LEAK."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    got: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _serve(rec: Receiver) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.got.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
            body = f"{LEAK} of {self.path}".encode()
            self.send_response(rec.status)
            for k, v in rec.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server, _ = _serve(rec)
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def _client(tmp_path: Path, allow: list[str]) -> TestClient:
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        alert_webhook_allow=allow,
        scheduler_enabled=False,
        alert_ingest_trigger=False,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[TestClient]:
    """The default deployment: nothing allowed beyond public addresses."""
    with _client(tmp_path, []) as c:
        yield c


def _channel(url: str) -> dict[str, str]:
    return {"name": "hook", "url": url, "secret": "s" * 20}


def _refused_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.1.2.3:{port}/hook",
        f"http://localhost:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://2130706433:{port}/hook",  # 127.0.0.1, decimal
        f"http://0x7f.0.0.1:{port}/hook",  # hex
        f"http://017700000001:{port}/hook",  # octal
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://172.31.255.254/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[fec0::1]/hook",  # site-local: deprecated, so Python's is_global says True
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "https://[2002:7f00:1::]/hook",
    ]


def test_creating_a_channel_to_a_refused_address_is_422_naming_url(
    strict: TestClient, receiver: Receiver
) -> None:
    for url in _refused_urls(receiver.port):
        r = strict.post(CHANNELS, json=_channel(url), headers=bearer("owner"))
        assert r.status_code == 422, (url, r.status_code, r.text)
        detail = r.json()["detail"]
        assert detail.startswith("url: ") and "FLOWHISTORY_ALERT_WEBHOOK_ALLOW" in detail, detail
        assert any(
            w in detail
            for w in (
                "loopback",
                "private",
                "link-local",
                "site-local",
                "shared",
                "unspecified",
                "multicast",
                "reserved",
            )
        ), detail
    assert strict.get(CHANNELS, headers=bearer("owner")).json() == []
    assert receiver.got == []


def test_localhost_names_what_it_resolves_to(strict: TestClient, receiver: Receiver) -> None:
    r = strict.post(CHANNELS, json=_channel(f"http://localhost:{receiver.port}/"), headers=bearer("owner"))
    assert r.status_code == 422
    assert r.json()["detail"].startswith("url: localhost resolves to ")


def test_an_admin_may_not_bypass_it_either(strict: TestClient, receiver: Receiver) -> None:
    r = strict.post(CHANNELS, json=_channel(receiver.url), headers=bearer("admin"))
    assert r.status_code == 422 and r.json()["detail"].startswith("url: 127.0.0.1 is a loopback address")


def test_changing_a_channel_to_a_refused_address_is_422_and_keeps_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    with _client(tmp_path, ["127.0.0.1"]) as c:
        ch = c.post(CHANNELS, json=_channel(receiver.url), headers=bearer("owner")).json()
        for url in ("http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.1.1.1/"):
            r = c.patch(f"{CHANNELS}/{ch['id']}", json={"url": url}, headers=bearer("owner"))
            assert r.status_code == 422 and r.json()["detail"].startswith("url: "), r.text
        assert c.get(f"{CHANNELS}/{ch['id']}", headers=bearer("owner")).json()["url"] == receiver.url


def _stored_channel(client: TestClient, url: str) -> str:
    """A channel as stored before this check existed (or before its DNS changed): not vetted."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    now = utc_now()
    ch = repo.Channel("legacy", "legacy", "owner", url, "s" * 20, True, None, 0, now, now)
    ctx.store.write(lambda c: repo.insert_channel(c, ch))
    return ch.id


def test_every_delivery_vets_again_and_sends_nothing(strict: TestClient, receiver: Receiver) -> None:
    strict.get("/api/v1/users/me", headers=bearer("owner"))  # the owner exists
    channel = _stored_channel(strict, receiver.url)
    r = strict.post(f"{CHANNELS}/{channel}/test", headers=bearer("owner"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] is False and out["status_code"] is None
    assert out["error"].startswith("not sent: 127.0.0.1 is a loopback address")
    assert receiver.got == []


def test_the_answer_body_is_never_echoed(tmp_path: Path, receiver: Receiver) -> None:
    with _client(tmp_path, ["127.0.0.1"]) as c:
        ch = c.post(CHANNELS, json=_channel(receiver.url), headers=bearer("owner")).json()
        for status, error in ((500, "HTTP 500"), (404, "HTTP 404"), (200, None)):
            receiver.status = status
            r = c.post(f"{CHANNELS}/{ch['id']}/test", headers=bearer("owner"))
            assert r.status_code == 200
            assert (r.json()["status_code"], r.json()["error"]) == (status, error)
            assert LEAK not in r.text
        deliveries = c.get(f"{CHANNELS}/{ch['id']}/deliveries", headers=bearer("owner"))
        assert len(deliveries.json()) == 3 and LEAK not in deliveries.text
        assert len(receiver.got) == 3


def test_a_refused_connection_says_only_its_class(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _client(tmp_path, ["127.0.0.1"]) as c:
        ch = c.post(CHANNELS, json=_channel(f"http://127.0.0.1:{port}/"), headers=bearer("owner")).json()
        out = c.post(f"{CHANNELS}/{ch['id']}/test", headers=bearer("owner")).json()
        assert (out["status_code"], out["error"]) == (None, "ConnectError")


def test_redirects_are_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    """An allowed receiver redirecting to a refused address, or to another allowed one: neither is
    followed (the second server, also allowed, counts what arrives)."""
    second = Receiver()
    server, _ = _serve(second)
    try:
        with _client(tmp_path, ["127.0.0.1"]) as c:
            ch = c.post(CHANNELS, json=_channel(receiver.url), headers=bearer("owner")).json()
            for status, location in (
                (302, "http://169.254.169.254/latest/meta-data/"),
                (307, second.url),
                (301, f"http://localhost:{second.port}/"),
            ):
                receiver.status, receiver.headers = status, {"Location": location}
                out = c.post(f"{CHANNELS}/{ch['id']}/test", headers=bearer("owner")).json()
                assert out["ok"] is False and out["status_code"] == status
                assert out["error"] == f"HTTP {status}: redirect not followed"
            assert len(receiver.got) == 3 and second.got == []
    finally:
        server.shutdown()
        server.server_close()


def test_an_allowed_host_name_is_pinned_and_keeps_its_host_header(tmp_path: Path, receiver: Receiver) -> None:
    """`localhost` allowed by name: the request reaches the receiver bound to 127.0.0.1 only, and
    the Host header is still the URL's."""
    resolved = {ipaddress.ip_address(i[4][0]) for i in socket.getaddrinfo("localhost", receiver.port)}
    if ipaddress.ip_address("127.0.0.1") not in resolved:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    target = egress.resolve(f"http://localhost:{receiver.port}/hook", ["localhost"])
    assert target.host_header == f"localhost:{receiver.port}" and target.address in resolved
    assert target.url.host == str(target.address)
    with _client(tmp_path, ["localhost", "127.0.0.1"]) as c:
        url = f"http://localhost:{receiver.port}/hook"
        ch = c.post(CHANNELS, json=_channel(url), headers=bearer("owner")).json()
        assert ch["url"] == url
        if target.address.version == 4:
            out = c.post(f"{CHANNELS}/{ch['id']}/test", headers=bearer("owner")).json()
            assert out["ok"] is True, out
            assert receiver.got[-1]["host"] == f"localhost:{receiver.port}"
            assert receiver.got[-1]["path"] == "/hook"


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        (["127.0.0.1"], "http://127.0.0.1:1/", True),
        (["127.0.0.0/8"], "http://127.9.9.9:1/", True),
        (["10.0.0.0/8"], "http://127.0.0.1:1/", False),
        (["10.0.0.0/8"], "http://10.2.3.4/", True),
        (["::1"], "http://[::1]:1/", True),
        (["[::1]"], "http://[::1]:1/", True),
        (["::1"], "http://127.0.0.1:1/", False),
        (["127.0.0.1"], "http://[::ffff:127.0.0.1]:1/", False),  # allow what you mean, exactly
        (["169.254.169.254"], "http://169.254.169.254/", True),
        (["hooks.internal"], "http://127.0.0.1:1/", False),
        ([], "http://8.8.8.8/", True),
        ([], "https://[2606:4700:4700::1111]/", True),
    ],
)
def test_the_allow_list(allow: list[str], url: str, ok: bool) -> None:
    if ok:
        target = egress.resolve(url, allow)
        assert str(target.address) == target.url.host
    else:
        with pytest.raises(egress.EgressRefused):
            egress.resolve(url, allow)


def _resolver(*addresses: str) -> Any:
    def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return getaddrinfo


def test_every_address_a_name_resolves_to_must_pass() -> None:
    """A name answering a public and a private address is refused: the client might pick either."""
    with pytest.raises(egress.EgressRefused, match=r"resolves to 10\.0\.0\.7"):
        egress.resolve("http://hooks.example/", [], getaddrinfo=_resolver("8.8.8.8", "10.0.0.7"))
    with pytest.raises(egress.EgressRefused, match="fe80::1 is a link-local"):
        egress.resolve("http://hooks.example/", [], getaddrinfo=_resolver("fe80::1%eth0"))
    target = egress.resolve(
        "https://Hooks.Example:8443/x?y=1", [], getaddrinfo=_resolver("8.8.4.4", "8.8.8.8")
    )
    assert str(target.url) == "https://8.8.4.4:8443/x?y=1"
    assert (target.host, target.host_header) == ("hooks.example", "hooks.example:8443")


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fails(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(egress.EgressRefused, match="does not resolve"):
        egress.resolve("http://nowhere.invalid/", [], getaddrinfo=fails)


def test_https_to_the_pinned_address_still_sends_the_host_name_as_sni(tmp_path: Path) -> None:
    """A TLS server on 127.0.0.1 records the SNI it is offered: the URL's host name, although the
    connection goes to the vetted address (the handshake then fails: the certificate is our own)."""
    first = ipaddress.ip_address(socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)[0][4][0])
    if first != ipaddress.ip_address("127.0.0.1"):
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    offered: list[str | None] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda _sock, name, _ctx: offered.append(name)  # type: ignore[assignment,misc,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with _client(tmp_path, ["localhost", "127.0.0.1", "::1"]) as c:
            url = f"https://localhost:{port}/hook"
            ch = c.post(CHANNELS, json=_channel(url), headers=bearer("owner")).json()
            out = c.post(f"{CHANNELS}/{ch['id']}/test", headers=bearer("owner")).json()
        thread.join(10)
        assert offered == ["localhost"]
        assert (out["ok"], out["status_code"], out["error"]) == (False, None, "ConnectError")
    finally:
        listener.close()


def test_port_0_is_refused_not_sent_to_the_default_port(strict: TestClient) -> None:
    """`:0` read as "no port" sent the notification to 80 or 443, not where the URL said."""
    for url in ("https://hooks.example.com:0/h", "http://8.8.8.8:0/h"):
        r = strict.post(CHANNELS, json=_channel(url), headers=bearer("owner"))
        assert r.status_code == 422, r.text
        assert "port 0" in str(r.json()["detail"]), r.text
    assert strict.get(CHANNELS, headers=bearer("owner")).json() == []
    with pytest.raises(egress.EgressRefused, match="port 0"):
        egress.resolve("http://hooks.example:0/", [], getaddrinfo=_resolver("8.8.8.8"))
