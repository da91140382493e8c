"""The two servers under test: uvicorn subprocesses on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import loadgen
from bench.common import HOST, PY, ROOT, log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def system_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (all cores), from /proc/stat."""
    parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    app: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self) -> None:
        cmd = [
            PY,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWHISTORY_")}
        env.update(self.env)
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log(f"{self.name}: {' '.join(cmd[1:])} (pid {self.proc.pid}, port {self.port})")

    def wait_healthy(self, timeout: float = 180.0) -> float:
        t0 = time.perf_counter()
        req = loadgen.build_request("GET", "/health", host=HOST)
        while time.perf_counter() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                status, _ = loadgen.run(loadgen.fetch(self.addr, req, timeout=5))
                if status == 200:
                    return time.perf_counter() - t0
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name} not healthy after {timeout:.0f} s:\n{self.log_path.read_text()[-3000:]}"
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the server process, in bytes."""
        out = {}
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def serve_cli(db: Path, env: dict[str, str], stderr_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`flowhistory serve` on `db` (this shell's FLOWHISTORY_ settings left out, `env` added), once
    GET /health answers: (the process, its base URL). Its stderr goes to `stderr_path`."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOWHISTORY_")}
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "flowhistory"), "serve", "--db", str(db), "--port", str(port)],
            env={**clean, **env},
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(stderr_path.read_text(errors="replace")[-3000:])
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start: see {stderr_path}")
