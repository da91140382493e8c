"""The state machine, as tables: each row feeds values at explicit times and expects states."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.alerts.rules import Rule, RuleCreate, State
from analytics.alerts.state_machine import Measurement, RuleState, Step, event_for, step

T0 = datetime(2026, 11, 30, 12, 0, 0)


def rule(**overrides: Any) -> Rule:
    data: dict[str, Any] = {
        "name": "r",
        "metric": "failure_rate",
        "flow_id": "f",
        "window": 3600,
        "operator": "gt",
        "threshold": 0.5,
    }
    data.update(overrides)
    return Rule(**RuleCreate(**data).model_dump(), id="r1", created_by="u", created_at=T0, updated_at=T0)


def run(r: Rule, values: list[tuple[int, float | None, int]], prev: RuleState | None = None) -> list[Step]:
    """Feed (seconds after T0, value, runs) in order; answer each step."""
    steps = []
    for offset, value, runs in values:
        s = step(r, prev, Measurement(value, runs), T0 + timedelta(seconds=offset))
        steps.append(s)
        prev = s.state
    return steps


def states(steps: list[Step]) -> list[str]:
    return [s.state.state.value for s in steps]


# (rule overrides, [(t, value, runs)], expected states after each)
TABLE: list[tuple[str, dict[str, Any], list[tuple[int, float | None, int]], list[str]]] = [
    ("ok stays ok", {}, [(0, 0.1, 10), (60, 0.2, 10)], ["OK", "OK"]),
    ("breach fires at once without pending", {}, [(0, 0.6, 10)], ["FIRING"]),
    ("at the threshold is not above it", {}, [(0, 0.5, 10)], ["OK"]),
    ("ge fires at the threshold", {"operator": "ge"}, [(0, 0.5, 10)], ["FIRING"]),
    ("resolves when back under", {}, [(0, 0.6, 10), (60, 0.4, 10)], ["FIRING", "OK"]),
    (
        "hysteresis: stays firing until below recovery",
        {"recovery_threshold": 0.2},
        [(0, 0.6, 10), (60, 0.4, 10), (120, 0.25, 10), (180, 0.2, 10)],
        ["FIRING", "FIRING", "FIRING", "OK"],
    ),
    (
        "pending: fires only when it held for the pending period",
        {"pending_for": 300},
        [(0, 0.6, 10), (120, 0.7, 10), (299, 0.7, 10), (300, 0.7, 10)],
        ["PENDING", "PENDING", "PENDING", "FIRING"],
    ),
    (
        "pending: a dip resets it",
        {"pending_for": 300},
        [(0, 0.6, 10), (120, 0.1, 10), (240, 0.6, 10), (400, 0.6, 10), (540, 0.6, 10)],
        ["PENDING", "OK", "PENDING", "PENDING", "FIRING"],
    ),
    (
        "keep firing for: stays firing after recovery, then resolves",
        {"keep_firing_for": 600},
        [(0, 0.6, 10), (60, 0.1, 10), (599, 0.1, 10), (600, 0.1, 10)],
        ["FIRING", "FIRING", "FIRING", "OK"],
    ),
    (
        "keep firing for counts from the last breach",
        {"keep_firing_for": 600},
        [(0, 0.6, 10), (500, 0.6, 10), (700, 0.1, 10), (1099, 0.1, 10), (1100, 0.1, 10)],
        ["FIRING", "FIRING", "FIRING", "FIRING", "OK"],
    ),
    (
        "warning below the alert threshold",
        {"warning_threshold": 0.3},
        [(0, 0.35, 10), (60, 0.6, 10), (120, 0.4, 10), (180, 0.1, 10)],
        ["WARNING", "FIRING", "WARNING", "OK"],
    ),
    (
        "min runs: too few runs are not judged (state kept)",
        {"min_runs": 20},
        [(0, 0.9, 5), (60, 0.9, 25), (120, 0.0, 3), (180, 0.0, 30)],
        ["OK", "FIRING", "FIRING", "OK"],
    ),
    ("no data, mode no_data", {"no_data": "no_data"}, [(0, 0.6, 10), (60, None, 0)], ["FIRING", "NO_DATA"]),
    ("no data, mode ok", {"no_data": "ok"}, [(0, 0.6, 10), (60, None, 0)], ["FIRING", "OK"]),
    (
        "no data, mode keep_last",
        {"no_data": "keep_last"},
        [(0, 0.6, 10), (60, None, 0), (120, 0.1, 10)],
        ["FIRING", "FIRING", "OK"],
    ),
    (
        "no data then data again",
        {"no_data": "no_data"},
        [(0, None, 0), (60, 0.1, 10), (120, None, 0), (180, 0.7, 10)],
        ["NO_DATA", "OK", "NO_DATA", "FIRING"],
    ),
    (
        "run_count below: zero runs judged when min_runs is 0",
        {"metric": "run_count", "operator": "lt", "threshold": 1, "min_runs": 0},
        [(0, 0.0, 0), (60, 5.0, 5)],
        ["FIRING", "OK"],
    ),
    (
        "lt with recovery above",
        {"metric": "run_count", "operator": "lt", "threshold": 10, "recovery_threshold": 20, "min_runs": 0},
        [(0, 5.0, 5), (60, 15.0, 15), (120, 20.0, 20)],
        ["FIRING", "FIRING", "OK"],
    ),
]


@pytest.mark.parametrize(("name", "overrides", "feed", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_table(name: str, overrides: dict[str, Any], feed: list[Any], expected: list[str]) -> None:
    assert states(run(rule(**overrides), feed)) == expected


def test_every_change_is_a_transition_with_its_values() -> None:
    steps = run(rule(pending_for=60, recovery_threshold=0.2), [(0, 0.6, 10), (60, 0.7, 12), (120, 0.1, 9)])
    [t0, t1, t2] = [s.transition for s in steps]
    assert t0 is not None and (t0.from_state, t0.to_state, t0.event) == (State.OK, State.PENDING, "pending")
    assert (t0.value, t0.runs, t0.threshold) == (0.6, 10, 0.5)
    assert t1 is not None and (t1.from_state, t1.to_state, t1.event) == (
        State.PENDING,
        State.FIRING,
        "firing",
    )
    assert (t1.value, t1.runs) == (0.7, 12)
    assert t2 is not None and (t2.to_state, t2.event, t2.value, t2.threshold) == (
        State.OK,
        "resolved",
        0.1,
        0.2,
    )
    assert [s.notify for s in steps] == [None, "firing", "resolved"]


def test_no_transition_when_nothing_changes() -> None:
    steps = run(rule(), [(0, 0.6, 10), (60, 0.7, 10)])
    assert steps[1].transition is None and steps[1].notify is None
    assert steps[1].state.since == T0  # since the state began, not since the last look
    assert steps[1].state.value == 0.7 and steps[1].state.evaluated_at == T0 + timedelta(seconds=60)


def test_renotify_while_firing() -> None:
    steps = run(
        rule(renotify_every=600),
        [(0, 0.6, 10), (300, 0.6, 10), (600, 0.6, 10), (900, 0.6, 10), (1200, 0.6, 10)],
    )
    assert [s.notify for s in steps] == ["firing", None, "firing", None, "firing"]
    assert [s.renotify for s in steps] == [False, False, True, False, True]
    assert all(s.transition is None for s in steps[1:])


def test_no_renotify_without_interval() -> None:
    steps = run(rule(), [(0, 0.6, 10), (86_400, 0.6, 10)])
    assert [s.notify for s in steps] == ["firing", None]


def test_paused_rule_goes_paused_and_stays() -> None:
    r = rule().model_copy(update={"paused": True})
    steps = run(r, [(0, 0.9, 10), (60, 0.9, 10)], prev=RuleState(State.FIRING, since=T0))
    assert states(steps) == ["PAUSED", "PAUSED"]
    assert steps[0].transition is not None and steps[0].transition.event == "paused"
    assert steps[0].notify is None and steps[1].transition is None


def test_resumed_rule_starts_from_ok() -> None:
    steps = run(rule(), [(0, 0.1, 10)], prev=RuleState(State.PAUSED, since=T0))
    assert states(steps) == ["OK"]


@pytest.mark.parametrize(
    ("frm", "to", "event"),
    [
        (State.OK, State.FIRING, "firing"),
        (State.PENDING, State.FIRING, "firing"),
        (State.FIRING, State.OK, "resolved"),
        (State.FIRING, State.WARNING, "resolved"),
        (State.WARNING, State.OK, "resolved"),
        (State.OK, State.WARNING, "warning"),
        (State.FIRING, State.NO_DATA, "no_data"),
        (State.NO_DATA, State.OK, "ok"),
        (State.OK, State.PENDING, "pending"),
        (State.PENDING, State.OK, "ok"),
        (State.FIRING, State.PAUSED, "paused"),
        (State.PAUSED, State.OK, "resumed"),
    ],
)
def test_events(frm: State, to: State, event: str) -> None:
    assert event_for(frm, to) == event
