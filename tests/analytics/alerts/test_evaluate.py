"""Evaluation against an independent computation in plain Python over the generated runs,
and the engine end to end: states, transitions, pause/resume, the ingest trigger."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.alerts import repository as repo
from analytics.alerts.engine import AlertEngine
from analytics.alerts.evaluate import measure, resolve_targets
from analytics.alerts.lifecycle import start_alerts, stop_alerts
from analytics.alerts.rules import Rule
from analytics.core.context import Context
from tests.factories.alerts import (
    MODELS,
    OTHER,
    Run,
    Setup,
    generate,
    hour_ago_base,
    make_rule,
    metric_value,
    save,
    setup_flows,
)


def expected(rule: Rule, flow_id: str, runs: list[Run], now: datetime) -> tuple[float | None, int]:
    start = now - timedelta(seconds=rule.window)
    inside = [r for r in runs if r.flow_id == flow_id and start <= r.created_at < now]
    if rule.flow_version is not None:
        inside = [r for r in inside if r.flow_version == rule.flow_version]
    node_level = rule.node_id is not None or rule.model is not None
    if node_level:
        inside = [
            r
            for r in inside
            if (rule.node_id is None or r.node_id == rule.node_id)
            and (rule.model is None or r.model == rule.model)
        ]
        errors = sum(r.node_status == "error" for r in inside)
        durations = [float(r.node_ms) for r in inside]
    else:
        errors = sum(r.status == "error" for r in inside)
        durations = [float(r.execution_time) for r in inside]
    n = len(inside)
    costs = [0.0 if r.cost is None else r.cost for r in inside]
    value = metric_value(rule.metric.value, n, errors, durations, costs)
    return value, n


@pytest.fixture
def s(ctx: Context) -> Setup:
    return setup_flows(ctx)


def test_every_metric_scope_and_window_matches_python(s: Setup) -> None:
    start = hour_ago_base()
    runs = generate(s, start, 1500)
    # the node cost is what ingest priced: a node-level cost rule sums node costs, check run level only
    a, c = s.flows["a"], s.flows["c"]
    version_b = next(r.flow_version for r in reversed(runs) if r.flow_id == a)
    rules = []
    for metric in ("failure_rate", "error_count", "run_count", "p95_duration", "cost"):
        for window in ("15m", "1h", "1d"):
            rules.append(
                make_rule(
                    s.ctx,
                    name=f"{metric}-{window}",
                    metric=metric,
                    window=window,
                    flow_id=a,
                    threshold=0.9 if metric == "failure_rate" else 1e9,
                )
            )
            rules.append(
                make_rule(
                    s.ctx,
                    name="v",
                    metric=metric,
                    window=window,
                    flow_id=a,
                    flow_version=version_b,
                    threshold=0.9 if metric == "failure_rate" else 1e9,
                )
            )
            rules.append(
                make_rule(
                    s.ctx,
                    name="owned",
                    metric=metric,
                    window=window,
                    owned_by="owner",
                    threshold=0.9 if metric == "failure_rate" else 1e9,
                )
            )
            if metric != "cost":
                rules.append(
                    make_rule(
                        s.ctx,
                        name="node",
                        metric=metric,
                        window=window,
                        flow_id=a,
                        node_id="llm_2",
                        threshold=0.9 if metric == "failure_rate" else 1e9,
                    )
                )
                rules.append(
                    make_rule(
                        s.ctx,
                        OTHER,
                        name="model",
                        metric=metric,
                        window=window,
                        flow_id=c,
                        model=MODELS[1],
                        threshold=0.9 if metric == "failure_rate" else 1e9,
                    )
                )
                rules.append(
                    make_rule(
                        s.ctx,
                        name="node+model",
                        metric=metric,
                        window=window,
                        owned_by="owner",
                        node_id="llm_1",
                        model=MODELS[0],
                        threshold=0.9 if metric == "failure_rate" else 1e9,
                    )
                )
    targets = resolve_targets(s.ctx, rules)
    assert len(targets) == 5 * 3 * 2 + 5 * 3 * 2 + 4 * 3 * (1 + 1 + 2)  # owned_by: flows a and b
    checked = 0
    for now in (
        start + timedelta(minutes=40),
        start + timedelta(hours=2, minutes=7),
        start + timedelta(hours=5),
    ):
        got = measure(s.ctx, targets, now)
        for t in targets:
            value, n = expected(t.rule, t.flow_id, runs, now)
            m = got[t.key]
            assert m.runs == n, (t.rule.name, t.rule.metric, t.rule.window)
            if value is None:
                assert m.value is None
            else:
                assert m.value == pytest.approx(value, rel=1e-9, abs=1e-12), (t.rule.name, t.rule.metric)
            checked += 1
    assert checked == 3 * len(targets)
    # the data is not trivial: somewhere each window held runs and errors
    assert any(m.runs > 10 for m in measure(s.ctx, targets, start + timedelta(hours=2)).values())


def test_one_scan_per_window_and_level(s: Setup) -> None:
    """1,000 rules over 3 windows cost at most 6 queries, not 1,000."""
    generate(s, hour_ago_base(), 200)
    rules = [
        make_rule(
            s.ctx,
            name=f"r{i}",
            metric=("failure_rate", "p95_duration", "run_count")[i % 3],
            window=("15m", "1h", "1d")[i % 3],
            flow_id=s.flows["a"],
            node_id="llm_1" if i % 2 else None,
            threshold=0.5 if i % 3 == 0 else 100,
        )
        for i in range(60)
    ]
    seen: list[str] = []
    real_read = s.ctx.store.read

    def counting_read(fn: Any) -> Any:
        seen.append(fn.__name__)
        return real_read(fn)

    s.ctx.store.read = counting_read  # type: ignore[method-assign]
    try:
        measure(s.ctx, resolve_targets(s.ctx, rules), hour_ago_base() + timedelta(hours=2))
    finally:
        s.ctx.store.read = real_read  # type: ignore[method-assign]
    assert len(seen) == 6


def transitions_of(ctx: Context, rule_id: str) -> list[tuple[str, str, str]]:
    rows = ctx.store.read(lambda c: repo.list_transitions(c, rule_ids=[rule_id], flow_ids=None, limit=100))
    return [
        (t.transition.from_state.value, t.transition.to_state.value, t.transition.event)
        for t in reversed(rows)
    ]


def test_engine_stores_states_and_transitions_with_values(s: Setup) -> None:
    start = hour_ago_base()
    a = s.flows["a"]
    ok = [
        Run(a, start + timedelta(minutes=i), "success", 100, "", "llm_1", "model-a", "success", 5)
        for i in range(10)
    ]
    bad = [
        Run(a, start + timedelta(minutes=20 + i), "error", 100, "", "llm_1", "model-a", "error", 5)
        for i in range(10)
    ]
    save(s.ctx, ok + bad)
    rule = make_rule(s.ctx, flow_id=a, window="15m", threshold=0.5, recovery_threshold=0.2, min_runs=3)
    engine = AlertEngine(s.ctx)
    engine.evaluate(start + timedelta(minutes=12))  # 10 successes in the window
    engine.evaluate(start + timedelta(minutes=31))  # 10 errors among the last 15 min
    engine.evaluate(start + timedelta(minutes=33))
    engine.evaluate(start + timedelta(minutes=60))  # nothing in the window: no data (default mode)
    assert transitions_of(s.ctx, rule.id) == [("OK", "FIRING", "firing"), ("FIRING", "NO_DATA", "no_data")]
    [fired, _] = sorted(
        s.ctx.store.read(lambda c: repo.list_transitions(c, rule_ids=[rule.id], flow_ids=None, limit=10)),
        key=lambda t: t.at,
    )
    assert fired.at == start + timedelta(minutes=31)
    # window [16 min, 31 min): the errors at 20..29 only
    assert (fired.transition.value, fired.transition.runs, fired.transition.threshold) == (1.0, 10, 0.5)
    state = s.ctx.store.read(lambda c: repo.load_states(c, [rule.id]))[(rule.id, a)]
    assert state.state.value == "NO_DATA" and state.runs == 0


def test_a_rule_deleted_while_it_is_measured_leaves_nothing(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE of a rule committed while an evaluation measured it: the evaluation then stored its
    state and transition (a rule gone, listed for ever) and notified its channels."""
    from analytics.alerts import engine as engine_module

    start = hour_ago_base()
    a = s.flows["a"]
    save(
        s.ctx,
        [
            Run(a, start + timedelta(minutes=i), "error", 100, "", "llm_1", "model-a", "error", 5)
            for i in range(5)
        ],
    )
    gone = make_rule(s.ctx, flow_id=a, window="15m", threshold=0.5, min_runs=1)
    kept = make_rule(s.ctx, flow_id=a, window="15m", threshold=0.5, min_runs=1)
    real = engine_module.measure

    def measured_then_deleted(*args: Any, **kw: Any) -> Any:
        values = real(*args, **kw)
        s.ctx.store.write(lambda c: repo.delete_rule(c, gone.id))  # the DELETE commits meanwhile
        return values

    monkeypatch.setattr(engine_module, "measure", measured_then_deleted)
    summary = AlertEngine(s.ctx).evaluate(start + timedelta(minutes=6))
    assert summary["transitions"] == 1
    assert transitions_of(s.ctx, gone.id) == [] and transitions_of(s.ctx, kept.id) == [
        ("OK", "FIRING", "firing")
    ]
    states = s.ctx.store.read(lambda c: repo.load_states(c, [gone.id, kept.id]))
    assert set(states) == {(kept.id, a)}


def test_owned_by_rule_is_judged_per_flow(s: Setup) -> None:
    start = hour_ago_base()
    a, b = s.flows["a"], s.flows["b"]
    save(
        s.ctx,
        [Run(a, start + timedelta(minutes=i), "error", 100, "", "n", "m", "error", 1) for i in range(5)],
    )
    save(
        s.ctx,
        [Run(b, start + timedelta(minutes=i), "success", 100, "", "n", "m", "success", 1) for i in range(5)],
    )
    rule = make_rule(s.ctx, owned_by="owner", window="1h")
    AlertEngine(s.ctx).evaluate(start + timedelta(minutes=10))
    states = s.ctx.store.read(lambda c: repo.load_states(c, [rule.id]))
    assert {k[1]: v.state.value for k, v in states.items()} == {a: "FIRING", b: "OK"}


def test_pause_and_resume_are_transitions(s: Setup) -> None:
    from analytics.alerts import service
    from tests.factories.alerts import OWNER

    start = hour_ago_base()
    a = s.flows["a"]
    save(
        s.ctx,
        [Run(a, start + timedelta(minutes=i), "error", 100, "", "n", "m", "error", 1) for i in range(5)],
    )
    rule = make_rule(s.ctx, flow_id=a, window="1h")
    clock = {"now": start + timedelta(minutes=10)}
    alerts = start_alerts(s.ctx, clock=lambda: clock["now"], ingest_trigger=False)
    try:
        alerts.engine.evaluate()
        clock["now"] += timedelta(minutes=1)
        service.set_paused(s.ctx, OWNER, rule.id, True)
        clock["now"] += timedelta(minutes=1)
        assert alerts.engine.evaluate()["targets"] == 0  # paused rules are not judged
        service.set_paused(s.ctx, OWNER, rule.id, False)
        clock["now"] += timedelta(minutes=1)
        alerts.engine.evaluate()
    finally:
        stop_alerts(s.ctx)
    assert transitions_of(s.ctx, rule.id) == [
        ("OK", "FIRING", "firing"),
        ("FIRING", "PAUSED", "paused"),
        ("PAUSED", "OK", "resumed"),
        ("OK", "FIRING", "firing"),
    ]


def test_ingest_triggers_an_evaluation_of_the_touched_flows(s: Setup) -> None:
    start = hour_ago_base()
    a, c = s.flows["a"], s.flows["c"]
    clock = {"now": start + timedelta(minutes=30)}
    rule_a = make_rule(s.ctx, flow_id=a, window="1h", min_runs=3)
    rule_c = make_rule(s.ctx, OTHER, flow_id=c, window="1h", no_data="keep_last")
    rule_week = make_rule(s.ctx, flow_id=a, window="7d")  # longer than alert_ingest_max_window_s
    alerts = start_alerts(s.ctx, clock=lambda: clock["now"], ingest_trigger=True)
    try:
        assert s.ctx.ingest_listeners == [alerts.engine.on_ingest]
        save(
            s.ctx,
            [Run(a, start + timedelta(minutes=i), "error", 100, "", "n", "m", "error", 1) for i in range(4)],
        )
        assert alerts.engine.wait_trigger_idle(30)
        assert transitions_of(s.ctx, rule_a.id) == [("OK", "FIRING", "firing")]
        assert alerts.engine.last_trigger is not None and alerts.engine.last_trigger["targets"] == 1
        assert transitions_of(s.ctx, rule_c.id) == []  # flow c was not touched: not judged
        assert s.ctx.store.read(lambda c_: repo.load_states(c_, [rule_c.id])) == {}
        assert transitions_of(s.ctx, rule_week.id) == []  # long windows: the scheduled pass's job
        assert alerts.engine.evaluate()["transitions"] == 1  # which judges it
        assert transitions_of(s.ctx, rule_week.id) == [("OK", "FIRING", "firing")]
    finally:
        stop_alerts(s.ctx)
    assert s.ctx.ingest_listeners == [] and s.ctx.alert_evaluator is None


def test_ingest_of_unwatched_flows_queues_nothing(s: Setup) -> None:
    engine = AlertEngine(s.ctx)
    make_rule(s.ctx, flow_id=s.flows["a"])
    engine.refresh_watch()
    engine.on_ingest({s.flows["c"]})
    assert engine._pending == set()
    engine.on_ingest({s.flows["a"], s.flows["c"]})
    assert engine._pending == {s.flows["a"]}
