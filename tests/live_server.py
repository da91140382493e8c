"""A real flowhistory server in a subprocess (`flowhistory serve`), for crash and lock tests.

Only 127.0.0.1. Output goes to files (a full pipe would stall the server). Every wait is
bounded: the bounds are safety nets, never what a test asserts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.factories import SECRET

FLOWHISTORY = str(Path(sys.executable).parent / "flowhistory")
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWHISTORY_")}
    env["WEBUI_SECRET_KEY"] = SECRET
    env["FLOWHISTORY_DISK_RESERVE"] = "1MiB"  # as tests/conftest.py: a test store keeps 1 MiB, not 64
    return env


class LiveServer:
    """One `flowhistory serve` process on a store; start() waits for GET /health."""

    def __init__(self, db: Path, name: str = "server", env: dict[str, str] | None = None) -> None:
        self.db = db
        self.name = name
        self.env = env or {}  # on top of server_env()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.db.parent / f"{self.name}-{self._starts}.stderr"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to serve."""
        self._starts += 1
        self.port = free_port()
        with open(self.stderr_path, "wb") as err, open(self.db.parent / f"{self.name}.stdout", "ab") as out:
            self.proc = subprocess.Popen(
                [FLOWHISTORY, "serve", "--db", str(self.db), "--port", str(self.port)],
                env={**server_env(), **self.env},
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self.proc

    def start(self) -> LiveServer:
        for _ in range(3):  # the free port may be taken between probe and bind: try another
            proc = self.spawn()
            if self._wait_healthy(proc):
                return self
            if proc.poll() is None:
                self.kill()
            if "address already in use" not in self.stderr().lower():
                break
        raise AssertionError(f"{self.name} did not start; stderr:\n{self.stderr()}")

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                r = httpx.get(f"{self.url}/health", timeout=2.0)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or checkpointed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: the graceful shutdown closes the store."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
