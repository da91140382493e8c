"""The CLI's way to a running server: when `flowhistory serve` holds the store (DuckDB allows one
process per file), a command asks the server over its HTTP API instead, as the admin.

The address comes from `server.json` in the data folder, which `serve` writes once it binds and
removes when it stops (it knows the port given with `--port`, which the settings may not); without
it, from the settings' host and port. The key is FLOWHISTORY_API_KEY, else the admin key the server
saved at first start (settings.admin_key_file). Every failure is a `RemoteError`: one line that
says what to do, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from analytics.core.config import Settings

KEY_ENV = "FLOWHISTORY_API_KEY"
SERVER_FILE = "server.json"
# a pass, an export or a restore can take long: wait for the answer, not for a connection
TIMEOUT = httpx.Timeout(10.0, read=None)


class RemoteError(Exception):
    """A one-line message for the operator; the command exits 1. `status`: the server's answer's
    HTTP status, when it answered one (a command may say a 404 in its own words)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def server_file(settings: Settings) -> Path:
    return settings.data_dir / SERVER_FILE


def _connect_host(host: str) -> str:
    """Where to reach a server bound to `host`: a wildcard bind answers on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def write_server_file(settings: Settings) -> Path:
    """Tell later CLI commands where this server answers (readable only by its owner)."""
    path = server_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{_connect_host(settings.host)}:{settings.port}"
    body = {"url": url, "pid": os.getpid(), "db_path": str(settings.db_path.resolve())}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh)
    return path


def remove_server_file(settings: Settings) -> None:
    """Remove server.json if it is still this process's (a second server may have replaced it)."""
    path = server_file(settings)
    with suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def server_url(settings: Settings) -> str:
    """The running server's address: server.json when it names a live process, else the settings'."""
    with suppress(OSError, ValueError, AttributeError, TypeError):
        found = json.loads(server_file(settings).read_text())
        pid, url = int(found["pid"]), str(found["url"])
        os.kill(pid, 0)  # raises when no such process: a stale file from a killed server
        return url
    return f"http://{_connect_host(settings.host)}:{settings.port}"


def admin_key(settings: Settings) -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        return key
    try:
        key = settings.admin_key_file.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise RemoteError(
            f"a server holds the store, and there is no admin API key to ask it with: "
            f"{settings.admin_key_file} is missing; set {KEY_ENV} to an admin's key "
            "(`flowhistory keys create ADMIN` with the server stopped), or stop the server"
        )
    return key


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # a validation error: each problem's field and message
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail or response.reason_phrase or f"HTTP {response.status_code}")


class Remote:
    """The server's API as the admin: each call answers the JSON or raises RemoteError."""

    def __init__(self, client: httpx.Client, key_source: str) -> None:
        self.client = client
        self.url = str(client.base_url).rstrip("/")
        self.key_source = key_source

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"the store is in use by another process, but no flowhistory server answers at {self.url} "
                f"({type(exc).__name__}): stop that process, or start the server and retry"
            ) from exc
        if response.status_code in (401, 403):
            raise RemoteError(
                f"the server at {self.url} refused the admin API key from {self.key_source} "
                f"({_detail(response)}): set {KEY_ENV} to an admin's key, or stop the server",
                response.status_code,
            )
        # a redirect too: an empty id makes `/users/` of `/users/{id}`, which the server redirects
        if response.status_code >= 300:
            raise RemoteError(
                f"{_detail(response)} (the server at {self.url} answered {response.status_code})",
                response.status_code,
            )
        try:
            return response.json()
        except ValueError:  # not JSON: something other than flowhistory answers there
            raise RemoteError(
                f"the server at {self.url} answered {response.status_code} but not with JSON: "
                "is it a flowhistory server?"
            ) from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)


@contextmanager
def connect(settings: Settings, url: str | None = None) -> Iterator[Remote]:
    """The running server's API (at `url`, else where it said it answers), as the admin
    (RemoteError when there is no key to use). Every command's way to a server, so each sends
    the admin key only there: never to an HTTP(S)_PROXY from the environment (trust_env=False)."""
    url = url or server_url(settings)
    key = admin_key(settings)
    source = KEY_ENV if os.environ.get(KEY_ENV, "").strip() else str(settings.admin_key_file)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT, trust_env=False) as client:
        yield Remote(client, source)
