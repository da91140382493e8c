"""The server's runtime: it hooks into a Context when it starts and leaves it as it was when it
stops (threads joined, listeners and the evaluator port removed), and a rule change reaches
its running engine through the Context's rules-changed listener."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.alerts import repository as repo
from analytics.alerts import service
from analytics.alerts.lifecycle import Alerts
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.history import ingest
from analytics.jobs.runtime import Runtime
from api.app import create_app
from tests.factories.alerts import OWNER, Run, make_rule, save, setup_flows

WAIT = 30.0  # a safety net for each wait, never what a test asserts


@pytest.fixture
def quick(tmp_path: Path) -> Settings:
    """An ingest trigger that judges at once; scheduled jobs far away (run on demand here)."""
    return Settings(
        db_path=tmp_path / "store.duckdb",
        alert_ingest_debounce_s=0,
        alert_ingest_rest_factor=0,
        alert_interval_s=3600,
        export_interval_s=0,
        export_compaction_interval_s=0,
        retention_interval_s=0,
        rollup_interval_s=3600,
    )


@pytest.fixture
def qctx(quick: Settings) -> Iterator[Context]:
    with open_context(quick) as c:
        yield c


def _new_threads(before: set[threading.Thread]) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t not in before)


def _hooks(ctx: Context) -> tuple[list[object], list[object], object]:
    return list(ctx.ingest_listeners), list(ctx.rules_changed_listeners), ctx.alert_evaluator


def test_start_hooks_in_and_stop_leaves_the_context_and_threads_as_before(qctx: Context) -> None:
    before_threads = set(threading.enumerate())
    before_hooks = _hooks(qctx)
    assert before_hooks == ([], [], None)
    runtime = Runtime.start(qctx)
    try:
        engine = runtime.alerts.engine
        assert qctx.ingest_listeners == [engine.on_ingest]
        assert qctx.rules_changed_listeners == [engine.refresh_watch]
        assert qctx.alert_evaluator is runtime.alerts
        running = _new_threads(before_threads)
        for name in ("flowhistory-scheduler", "flowhistory-alerts-ingest", "flowhistory-webhooks"):
            assert name in running, running
        state = runtime.run_job("rollups", wait=True)  # a job thread comes and goes
        assert state["last_ok"] is True and state["runs"] == 1
    finally:
        runtime.stop()
    assert _new_threads(before_threads) == []
    assert _hooks(qctx) == before_hooks
    runtime.stop()  # twice is harmless (the lifespan may stop one a test stopped already)
    assert _hooks(qctx) == before_hooks


def test_scheduler_disabled_starts_no_scheduler_thread_but_jobs_run_on_demand(quick: Settings) -> None:
    with open_context(quick.model_copy(update={"scheduler_enabled": False})) as ctx:
        before = set(threading.enumerate())
        runtime = Runtime.start(ctx)
        try:
            assert "flowhistory-scheduler" not in _new_threads(before)
            assert all(j["next_run"] is None for j in runtime.jobs())  # nothing scheduled
            assert runtime.run_job("alerts", wait=True)["last_result"]["rules"] == 0
        finally:
            runtime.stop()
        assert _new_threads(before) == []


def test_one_alert_engine_per_context(qctx: Context) -> None:
    runtime = Runtime.start(qctx)
    try:
        with pytest.raises(RuntimeError, match="already runs"):
            Alerts.start(qctx)
        assert qctx.alert_evaluator is runtime.alerts  # the refused one hooked nothing in
        assert len(qctx.rules_changed_listeners) == 1
    finally:
        runtime.stop()


def _errors(ctx: Context, flow_id: str, n: int) -> None:
    """n failed runs in the last minutes: inside a 1h window of the real clock."""
    start = ingest.utc_now() - timedelta(minutes=10)
    save(
        ctx,
        [
            Run(flow_id, start + timedelta(seconds=i), "error", 100, "", "n", "m", "error", 1)
            for i in range(n)
        ],
    )


def _transitions(ctx: Context, rule_id: str) -> list[tuple[str, str]]:
    rows = ctx.store.read(lambda c: repo.list_transitions(c, rule_ids=[rule_id], flow_ids=None, limit=100))
    return [(t.transition.from_state.value, t.transition.to_state.value) for t in reversed(rows)]


def test_a_rule_change_reaches_the_running_engine_through_the_listener(qctx: Context) -> None:
    s = setup_flows(qctx)
    a = s.flows["a"]
    runtime = Runtime.start(qctx)  # started with no rule: its engine watches no flow
    engine = runtime.alerts.engine
    try:
        rule = make_rule(qctx, flow_id=a, window="1h", min_runs=3)  # announced on the Context
        _errors(qctx, a, 4)
        assert engine.wait_trigger_idle(WAIT)
        # the ingest of flow a was judged at once: the engine learnt of the rule
        assert engine.trigger_evaluations == 1
        assert _transitions(qctx, rule.id) == [("OK", "FIRING")]

        service.delete_rule(qctx, OWNER, rule.id)  # and of its removal: flow a is not watched
        _errors(qctx, a, 2)
        assert engine.wait_trigger_idle(WAIT)
        assert engine.trigger_evaluations == 1
    finally:
        runtime.stop()


def test_the_app_lifespan_starts_and_stops_its_runtime(settings: Settings) -> None:
    before = set(threading.enumerate())
    app = create_app(settings)
    with TestClient(app):
        runtime: Runtime = app.state.runtime
        ctx: Context = app.state.ctx
        assert ctx.alert_evaluator is runtime.alerts and runtime.jobs()
    assert _hooks(ctx) == ([], [], None)
    assert [n for n in _new_threads(before) if n.startswith(("flowhistory", "job-"))] == []
