"""What a real `flowhistory serve` leaves for others on the machine and in the browser: files its
user alone may read (the store, its WAL and backups were 0644, one file away from the 0600 admin
key, and hold the channels' webhook secrets), and answers another site may not frame or sniff."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import bearer
from tests.live_server import LiveServer

ADMIN = bearer("admin")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("private") / "data"
    folder.mkdir()
    live = LiveServer(
        folder / "store.duckdb", env={"FLOWHISTORY_BACKUP_DIR": str(folder / "backups")}
    ).start()
    try:
        yield live
    finally:
        live.kill()


def _others_may_read(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def test_the_store_its_wal_and_a_backup_are_the_servers_user_alone(server: LiveServer) -> None:
    channel = httpx.post(
        f"{server.url}/api/v1/alerts/channels",
        headers=ADMIN,
        json={"name": "c", "url": "https://93.184.216.34/hook", "secret": "a-webhook-secret-0123456789"},
    )
    assert channel.status_code in (200, 201), channel.text
    wal = server.db.with_name(server.db.name + ".wal")
    assert wal.exists(), "the write above is in the WAL until a checkpoint"
    backup = httpx.post(f"{server.url}/api/v1/admin/backup", headers=ADMIN, timeout=60)
    assert backup.status_code == 200, backup.text
    made = server.db.parent / "backups" / backup.json()["name"]
    for path in (server.db, wal, made, made.parent):
        assert path.exists(), path
        assert not _others_may_read(path), f"{path.name}: mode {stat.filemode(path.stat().st_mode)}"


@pytest.mark.parametrize("path", ["/", "/health", "/api/v1/flows/", "/api/v1/flows/nope/executions"])
def test_no_answer_may_be_framed_or_sniffed(server: LiveServer, path: str) -> None:
    r = httpx.get(server.url + path, headers=ADMIN)
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
