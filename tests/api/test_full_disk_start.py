"""A server starts on a full disk: reads and deletes work there (README, FLOWHISTORY_DISK_RESERVE),
so a restart (a crash, a supervisor) must leave one serving. It exited at once with "[Errno 28]
No space left on device": the address it writes for CLI commands (server.json) could not be
written, and nothing listened until an operator freed room by hand."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.factories import bearer
from tests.factories.disk import fill
from tests.live_server import FLOWHISTORY, free_port, server_env


def test_a_server_starts_and_answers_reads_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    store = small_disk / "data" / "store.duckdb"
    for disk_full in (False, True):  # a first start makes the admin, a restart finds the disk full
        if disk_full:
            fill(small_disk)
        port = free_port()
        with open(tmp_path / "server.stderr", "wb") as err:
            proc = subprocess.Popen(
                [FLOWHISTORY, "serve", "--db", str(store), "--port", str(port)],
                env=server_env(), stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if not disk_full:
            _wait_healthy(proc, f"http://127.0.0.1:{port}", tmp_path)
            proc.terminate()
            assert proc.wait(timeout=30) == 0
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, tmp_path)
        assert httpx.get(f"{url}/api/v1/flows/", headers=bearer("admin")).status_code == 200
        assert (
            not (store.parent / "server.json").exists() or (store.parent / "server.json").stat().st_size == 0
        )
        log = (tmp_path / "server.stderr").read_text()
        assert "cannot write" in log and "server.json" in log, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, folder: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (folder / "server.stderr").read_text()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.2)
