"""The scheduler: jobs run on time, never twice at once, and a failing job stops nothing else."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.core.errors import Conflict, NotFound
from analytics.jobs.runtime import Runtime
from analytics.jobs.scheduler import Job, Scheduler, read_status_file
from api.app import create_app
from api.cli import app as cli_app
from tests.factories import bearer

WAIT = 10.0  # a safety net for each wait, never what a test asserts


class Gate:
    """A job body that blocks until released, counting how many copies run at once."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.active = 0
        self.most_active = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, ctx: Context) -> dict[str, Any]:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.most_active = max(self.most_active, self.active)
        self.started.set()
        self.release.wait(WAIT)
        with self._lock:
            self.active -= 1
        return {"calls": self.calls}


@pytest.fixture
def scheduler_factory(ctx: Context, tmp_path: Path) -> Iterator[Any]:
    made: list[Scheduler] = []

    def make(jobs: list[Job]) -> Scheduler:
        s = Scheduler(ctx, jobs, status_file=tmp_path / "jobs.json")
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop(timeout=WAIT)


def test_run_now_records_result_duration_and_status_file(scheduler_factory: Any, tmp_path: Path) -> None:
    s = scheduler_factory([Job("count", 0, lambda ctx: {"runs": ctx.store.read(lambda c: 1)})])
    state = s.run_now("count", wait=True)
    assert state["last_ok"] is True and state["last_result"] == {"runs": 1}
    assert state["runs"] == 1 and state["failures"] == 0 and not state["running"]
    assert state["last_duration_s"] >= 0 and state["next_run"] is None  # on demand only
    saved = read_status_file(tmp_path / "jobs.json")
    assert saved is not None and saved["jobs"][0]["last_result"] == {"runs": 1}
    # times as the API writes them, with `Z` (`flowhistory jobs` printed `+00:00`)
    assert saved["written_at"].endswith("Z") and saved["jobs"][0]["last_finished"].endswith("Z")


def test_jobs_finishing_at_once_never_tear_the_status_file(
    scheduler_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each job thread wrote the same `jobs.json.tmp` and renamed it: one could publish another's
    half-written file (the CLI failed on it) or find it gone (an error in the log)."""
    s = scheduler_factory([Job(f"j{i}", 0, lambda ctx: {"pad": "x" * 20_000}) for i in range(6)])
    torn: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                json.loads((tmp_path / "jobs.json").read_text())
            except FileNotFoundError:
                pass
            except ValueError as exc:
                torn.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(15):
            threads = [
                threading.Thread(target=s.run_now, args=(f"j{i}",), kwargs={"wait": True}) for i in range(6)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        done.set()
        reader.join()
    assert torn == [] and "could not write" not in caplog.text
    saved = read_status_file(tmp_path / "jobs.json")
    assert saved is not None and {j["runs"] for j in saved["jobs"]} == {15}


def test_never_two_copies_of_one_job(scheduler_factory: Any) -> None:
    gate = Gate()
    s = scheduler_factory([Job("slow", 0.01, gate)])
    s.start()
    assert gate.started.wait(WAIT)
    with pytest.raises(Conflict, match="already running"):
        s.run_now("slow")
    # the job came due many times while it ran; none of those started a second copy
    threading.Event().wait(0.1)
    assert gate.most_active == 1 and gate.calls == 1
    gate.release.set()


def test_a_failing_job_is_recorded_and_others_keep_running(scheduler_factory: Any) -> None:
    failed_twice = threading.Semaphore(0)
    healthy_runs = threading.Semaphore(0)

    def broken(ctx: Context) -> None:
        failed_twice.release()
        raise RuntimeError("disk on fire")

    def healthy(ctx: Context) -> str:
        healthy_runs.release()
        return "ok"

    s = scheduler_factory([Job("broken", 0.01, broken), Job("healthy", 0.01, healthy)])
    s.start()
    # the broken job keeps being scheduled after failing, and the healthy one keeps running
    assert failed_twice.acquire(timeout=WAIT) and failed_twice.acquire(timeout=WAIT)
    for _ in range(3):
        assert healthy_runs.acquire(timeout=WAIT)
    s.stop(timeout=WAIT)
    broken_state, healthy_state = s.status()
    assert broken_state["last_ok"] is False and broken_state["last_error"] == "RuntimeError: disk on fire"
    assert broken_state["failures"] == broken_state["runs"] >= 1 and broken_state["last_result"] is None
    assert healthy_state["last_ok"] is True and healthy_state["failures"] == 0
    assert healthy_state["last_result"] == "ok"


def test_unknown_job_and_duplicate_names(scheduler_factory: Any, ctx: Context) -> None:
    s = scheduler_factory([Job("a", 0, lambda ctx: None)])
    with pytest.raises(NotFound, match="no job named 'nope'"):
        s.run_now("nope")
    with pytest.raises(ValueError, match="unique"):
        Scheduler(ctx, [Job("a", 0, lambda c: None), Job("a", 1, lambda c: None)])


def test_jobs_api_is_admin_only_and_runs_jobs(settings: Settings) -> None:
    settings = settings.model_copy(update={"admin_user_ids": ["boss"]})
    app = create_app(settings)
    with TestClient(app) as client:
        ctx: Context = app.state.ctx
        gate = Gate()
        app.state.runtime.stop()
        app.state.runtime = runtime = Runtime.start(ctx, jobs=[Job("probe", 0, gate)])
        admin, user = bearer("boss"), bearer("someone")
        assert client.get("/api/v1/jobs", headers=user).status_code == 403
        assert client.post("/api/v1/jobs/probe/run", headers=user).status_code == 403
        assert client.get("/api/v1/jobs").status_code == 401

        r = client.post("/api/v1/jobs/probe/run", headers=admin)
        assert r.status_code == 200 and r.json()["running"] is True
        assert gate.started.wait(WAIT)
        busy = client.post("/api/v1/jobs/probe/run", headers=admin)
        assert busy.status_code == 409 and "already running" in busy.json()["detail"]
        gate.release.set()
        runtime.scheduler.stop(timeout=WAIT)

        jobs = client.get("/api/v1/jobs", headers=admin).json()
        assert [j["name"] for j in jobs] == ["probe"]
        assert jobs[0]["last_ok"] is True and jobs[0]["last_result"] == {"calls": 1}
        missing = client.post("/api/v1/jobs/nope/run", headers=admin)
        assert missing.status_code == 404 and "no job named 'nope'" in missing.json()["detail"]
        assert client.get("/api/v1/jobs/Bad%20Name", headers=admin).status_code == 422


def test_cli_shows_the_status_file(settings: Settings) -> None:
    runner = CliRunner()
    env = {"FLOWHISTORY_DB_PATH": str(settings.db_path), "COLUMNS": "200", "NO_COLOR": "1"}
    empty = runner.invoke(cli_app, ["jobs"], env=env)
    assert empty.exit_code == 0 and "no job has run yet" in empty.output
    settings.jobs_status_file.write_text(
        json.dumps(
            {
                "written_at": "2026-11-30T00:00:00+00:00",
                "jobs": [
                    {
                        "name": "export",
                        "every_s": 300,
                        "running": False,
                        "last_finished": "2026-11-30T00:00:00+00:00",
                        "last_duration_s": 1.5,
                        "last_ok": False,
                        "last_result": None,
                        "last_error": "OSError: target unreachable",
                        "next_run": "2026-11-30T00:05:00+00:00",
                    }
                ],
            }
        )
    )
    shown = runner.invoke(cli_app, ["jobs"], env=env)
    assert shown.exit_code == 0
    assert "export" in shown.output and "target unreachable" in shown.output and "300s" in shown.output
    unknown = runner.invoke(cli_app, ["jobs", "run", "nope", "--db", str(settings.db_path)], env=env)
    assert unknown.exit_code == 1 and "no job named 'nope'" in unknown.output


def test_a_job_refused_by_a_conflict_is_skipped_not_failed(scheduler_factory: Any) -> None:
    """Retention refused while a compaction runs (a Conflict) did not fail: it is counted as
    skipped, its last good state stays, and a caller that waited gets the Conflict (a 409)."""
    busy = True

    def retention(ctx: Context) -> dict[str, int]:
        if busy:
            raise Conflict("a retention compaction is already running")
        return {"deleted": 0}

    s = scheduler_factory([Job("retention", 0, retention)])
    busy = False
    assert s.run_now("retention", wait=True)["last_ok"] is True
    busy = True
    state = s.run_now("retention", wait=True)
    assert isinstance(s.last_error("retention"), Conflict)
    assert (state["runs"], state["failures"], state["skipped"]) == (1, 0, 1)
    assert state["last_ok"] is True and state["last_result"] == {"deleted": 0}
    assert "compaction is already running" in state["last_skipped"]
    busy = False
    assert s.run_now("retention", wait=True)["runs"] == 2
    assert s.last_error("retention") is None
