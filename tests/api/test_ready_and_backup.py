"""`/ready` names the part that is not ready; `POST /api/v1/admin/backup` is for admins and writes
only into the configured backup folder."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from api.app import create_app
from tests.factories import SECRET, World, bearer, build_world, save_run

READY = {"ready": True, "store": "open", "migrations": "current", "writer": "alive", "openwebui": "not used"}


def test_ready_when_store_migrations_and_writer_are(client: TestClient) -> None:
    r = client.get("/ready")  # no credential: like /health
    assert r.status_code == 200 and r.json() == READY


def test_not_ready_when_the_schema_is_behind(client: TestClient) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    migrations.downgrade(ctx.store, 1)
    r = client.get("/ready")
    assert r.status_code == 503
    previous = migrations.all_migrations()[-2].version  # not head - 1: a number may be another branch's
    assert r.json() == {"detail": f"not ready: migrations at {previous}, head is {migrations.head()}"}


def test_not_ready_when_the_store_is_closed(client: TestClient) -> None:
    client.app.state.ctx.store.close()  # type: ignore[attr-defined]
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json() == {"detail": "not ready: store closed; migrations unknown; writer stopped"}
    assert client.get("/health").status_code == 200, "liveness stays cheap and up"


def test_backup_endpoint_is_admin_only_and_writes_into_the_backup_folder(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere" / "backups"
    settings = Settings(db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, backup_dir=folder)
    with TestClient(create_app(settings)) as client:
        world: World = build_world(client)
        ids = [save_run(world, world.public, text=f"r{i}") for i in range(5)]
        assert client.post("/api/v1/admin/backup").status_code == 401
        assert client.post("/api/v1/admin/backup", headers=bearer("owner")).status_code == 403
        r = client.post(
            "/api/v1/admin/backup", headers=bearer("admin"), json={"dest": str(tmp_path / "evil.duckdb")}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert not (tmp_path / "evil.duckdb").exists(), "a path from the request was used"
    made = folder / body["name"]
    assert [p.name for p in folder.iterdir()] == [body["name"]]
    assert body["runs"] == len(ids) and body["bytes"] == made.stat().st_size
    assert body["schema_version"] == migrations.head()
    assert str(tmp_path) not in r.text, "the answer shows a server path"
    with open_context(Settings(db_path=made, webui_secret_key=SECRET), migrate=False) as ctx:
        stored = {
            r[0] for r in ctx.store.read(lambda c: c.execute("SELECT id::VARCHAR FROM executions").fetchall())
        }
    assert stored == set(ids)


def test_a_backup_folder_the_server_cannot_write_is_a_clear_507(tmp_path: Path) -> None:
    """FLOWHISTORY_BACKUP_DIR under /sys (mkdir: EACCES even for root) or /proc (an existing
    folder nothing can be written to): a 500 "internal error", the operator left guessing."""
    for folder in (Path("/sys/flowhistory-backups"), Path("/proc")):
        store = tmp_path / folder.name / "store.duckdb"
        settings = Settings(db_path=store, webui_secret_key=SECRET, port=0, backup_dir=folder)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            build_world(client)
            r = client.post("/api/v1/admin/backup", headers=bearer("admin"))
            assert r.status_code == 507, (folder, r.text)
            assert "FLOWHISTORY_BACKUP_DIR" in r.json()["detail"] and str(folder) not in r.text
            assert "no backup was made" in r.json()["detail"]
