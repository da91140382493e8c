"""The exports API: admins run a cycle and read the status; others get 403; a busy export 409."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.exports.publish import target_lock
from analytics.exports.targets import open_target
from api.app import create_app
from tests.factories import SECRET, World, build_world, make_execution, save_run
from tests.factories.exports import add_runs, read, seed_flow


def test_admin_runs_an_export_and_reads_its_status(world: World) -> None:
    ctx = world.ctx
    flow = seed_flow(ctx)
    add_runs(ctx, flow, ["2026-11-01", "2026-11-02"], 3)
    r = world.client.post("/api/v1/exports/run", headers=world.h("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"]["days_written"] == 2 and body["status"]["ok"] is True
    root = Path(body["status"]["target"])
    assert read(root, "SELECT count(*) FROM t") == [(6,)]

    status = world.client.get("/api/v1/exports/status", headers=world.h("admin")).json()
    assert status["tables"]["executions"] == {
        "partitions": 2,
        "files": 2,
        "bytes": status["tables"]["executions"]["bytes"],
        "rows": 6,
        "max_files_per_partition": 1,
    }
    assert status["tables"]["executions"]["bytes"] > 0
    assert status["last_cycle"]["ok"] and status["error"] is None
    # the scheduler ran it as its `export` job
    job = world.client.get("/api/v1/jobs/export", headers=world.h("admin")).json()
    assert job["runs"] == 1 and job["last_ok"] is True


def test_non_admins_are_refused(world: World) -> None:
    for user in ("owner", "reader"):
        assert world.client.post("/api/v1/exports/run", headers=world.h(user)).status_code == 403
        assert world.client.get("/api/v1/exports/status", headers=world.h(user)).status_code == 403
    assert world.client.get("/api/v1/exports/status").status_code == 401


def test_a_running_export_is_a_409(world: World) -> None:
    ctx = world.ctx
    target = open_target(ctx.settings)
    with target_lock(target):  # the job started below waits on the target
        world.client.app.state.runtime.run_job("export", wait=False)  # type: ignore[attr-defined]
        r = world.client.post("/api/v1/exports/run", headers=world.h("admin"))
        assert r.status_code == 409 and "already running" in r.json()["detail"]


def test_a_failing_target_is_a_502_and_shows_in_the_status(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    world.ctx.settings.export_url = str(blocker / "exports")
    r = world.client.post("/api/v1/exports/run", headers=world.h("admin"))
    assert r.status_code == 502 and "export failed" in r.json()["detail"]
    status = world.client.get("/api/v1/exports/status", headers=world.h("admin")).json()
    assert status["ok"] is False and "NotADirectoryError" in status["error"]
    assert status["failures_since_ok"] == 1

    blocker.unlink()  # the target is back: the next run succeeds and clears the error
    r = world.client.post("/api/v1/exports/run", headers=world.h("admin"))
    assert r.status_code == 200
    assert world.client.get("/api/v1/exports/status", headers=world.h("admin")).json()["error"] is None


def test_an_export_with_no_room_is_a_507_not_a_failing_target(world: World, small_disk: Path) -> None:
    """No room (the export folder's disk here; the store's own disk likewise) answered 502
    "export failed: StorageFull: ..." as if the target had failed, a class name in the text."""
    from analytics.exports.run import EXPORT_FOLDER_FULL
    from tests.factories.disk import leave_free

    ctx = world.ctx
    add_runs(ctx, seed_flow(ctx), [f"2026-03-{d:02d}" for d in range(1, 20)], 20, inputs={"p": "x" * 4000})
    ctx.settings.export_url = str(small_disk / "exports")
    leave_free(small_disk, 64 << 10)
    r = world.client.post("/api/v1/exports/run", headers=world.h("admin"))
    assert r.status_code == 507, r.text
    assert r.json()["detail"] == EXPORT_FOLDER_FULL


def test_an_export_on_a_store_that_takes_no_writes_is_its_503(tmp_path: Path) -> None:
    """The store's folder remounted read-only, DuckDB gave up on the file at a checkpoint and it
    could not be reopened: the export answered 502 "export failed: StoreUnwritable: ...", as if
    its target had failed."""
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(
        db_path=data / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        scheduler_enabled=False,
        checkpoint_threshold="64KB",
        export_url=str(tmp_path / "exports"),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        world = build_world(client)
        save_run(world, world.public)
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
            answers = [
                client.post(
                    f"/api/v1/flows/{world.public}/executions",
                    json=make_execution(world.public, text="y" * 30_000),
                    headers=world.h("owner"),
                ).status_code
                for _ in range(4)
            ]
            assert 503 in answers, answers  # the checkpoint failed and the reopen too
            r = client.post("/api/v1/exports/run", headers=world.h("admin"))
            assert r.status_code == 503, r.text
            assert "export failed" not in r.json()["detail"]
        finally:
            subprocess.run(["umount", str(data)], check=True)
