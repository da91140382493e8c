"""One judgement: previous state + measured value + now -> new state, and the transition if any.

Pure (no I/O, no clock), so every rule of the table can be tested by feeding it times.

- Not judged: fewer runs than `min_runs` in the window. With no runs at all (or no value,
  e.g. no durations) the no-data mode decides: OK, keep the last state, or NO_DATA. With some
  runs but fewer than `min_runs` the state stays as it was.
- Judged: `value <op> threshold` is a breach. A breach fires at once without a pending
  period; with one it goes PENDING first and fires when it still holds `pending_for` seconds
  after it began. A firing rule stays firing while `value <op> recovery_threshold` holds
  (hysteresis; the recovery threshold defaults to the alert threshold), and for
  `keep_firing_for` seconds after that last held (anti-flap). Otherwise WARNING when
  `value <op> warning_threshold`, else OK.
- Re-notify: a rule staying FIRING, WARNING or NO_DATA notifies again every `renotify_every`
  seconds; that is a notification, not a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from analytics.alerts.rules import NoDataMode, Rule, State

# events whose transition (or re-notification) is sent to the rule's channels
NOTIFIED_EVENTS = frozenset({"firing", "resolved", "warning", "no_data"})
RENOTIFIED_EVENTS = {State.FIRING: "firing", State.WARNING: "warning", State.NO_DATA: "no_data"}


@dataclass(frozen=True, slots=True)
class RuleState:
    state: State
    since: datetime
    pending_since: datetime | None = None
    last_breach_at: datetime | None = None
    last_notified_at: datetime | None = None
    value: float | None = None
    runs: int | None = None
    evaluated_at: datetime | None = None
    muted_event: str | None = None  # a notification a silence held back (engine's, not judged here)


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the window held: `value` is None when it is undefined (no runs, no durations)."""

    value: float | None
    runs: int


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: State
    to_state: State
    event: str
    value: float | None
    runs: int | None
    threshold: float | None
    reason: str
    silenced_by: str | None = None  # the silence that held its notification back


@dataclass(frozen=True, slots=True)
class Step:
    state: RuleState
    transition: Transition | None
    notify: str | None = None  # the event to send, if any
    renotify: bool = False


def event_for(from_state: State, to_state: State) -> str:
    if to_state == State.FIRING:
        return "firing"
    if from_state in (State.FIRING, State.WARNING) and to_state in (State.OK, State.WARNING):
        return "resolved" if from_state == State.FIRING or to_state == State.OK else "warning"
    if to_state == State.WARNING:
        return "warning"
    if to_state == State.NO_DATA:
        return "no_data"
    if to_state == State.PENDING:
        return "pending"
    if to_state == State.PAUSED:
        return "paused"
    if from_state == State.PAUSED:
        return "resumed"
    return "ok"


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def step(rule: Rule, prev: RuleState | None, m: Measurement, now: datetime) -> Step:
    """Judge one (rule, flow) at `now`."""
    if prev is None or (prev.state == State.PAUSED and not rule.paused):
        prev = RuleState(State.OK, since=now)  # a resumed rule starts afresh
    base = replace(prev, value=m.value, runs=m.runs, evaluated_at=now)
    if rule.paused:
        return _move(rule, base, State.PAUSED, now, None, "the rule is paused")

    if m.value is None or m.runs < rule.min_runs:
        if m.runs > 0 and m.value is not None:
            return _stay(rule, base, now)  # some runs, too few to judge
        reason = f"no data: {m.runs} runs in the last {rule.window} s"
        if rule.no_data == NoDataMode.KEEP_LAST:
            return _stay(rule, base, now)
        if rule.no_data == NoDataMode.NO_DATA:
            return _leave(rule, base, State.NO_DATA, now, None, reason)
        return _leave(rule, base, State.OK, now, None, reason)

    v = m.value
    op = rule.operator
    if base.state == State.FIRING:
        if op.holds(v, rule.recovery):
            return _stay(rule, replace(base, last_breach_at=now), now)
        healthy = _healthy_state(rule, v)
        return _leave(
            rule,
            base,
            healthy,
            now,
            rule.recovery,
            f"{rule.metric.value} {_fmt(v)} no longer {op.value} {_fmt(rule.recovery)}",
        )
    if op.holds(v, rule.threshold):
        why = f"{rule.metric.value} {_fmt(v)} {op.value} {_fmt(rule.threshold)}"
        if rule.pending_for == 0:
            return _move(rule, replace(base, last_breach_at=now), State.FIRING, now, rule.threshold, why)
        if base.state == State.PENDING and base.pending_since is not None:
            if now - base.pending_since >= timedelta(seconds=rule.pending_for):
                return _move(
                    rule,
                    replace(base, last_breach_at=now),
                    State.FIRING,
                    now,
                    rule.threshold,
                    f"{why} for {rule.pending_for} s",
                )
            return _stay(rule, base, now)
        return _move(
            rule,
            replace(base, pending_since=now),
            State.PENDING,
            now,
            rule.threshold,
            f"{why}; firing if it holds for {rule.pending_for} s",
        )
    target = _healthy_state(rule, v)
    if target == State.WARNING:
        why = f"{rule.metric.value} {_fmt(v)} {op.value} warning {_fmt(rule.warning_threshold)}"
        return _move(rule, base, target, now, rule.warning_threshold, why)
    return _move(
        rule,
        base,
        State.OK,
        now,
        rule.threshold,
        f"{rule.metric.value} {_fmt(v)} not {op.value} {_fmt(rule.threshold)}",
    )


def _healthy_state(rule: Rule, value: float) -> State:
    w = rule.warning_threshold
    return State.WARNING if w is not None and rule.operator.holds(value, w) else State.OK


def _leave(
    rule: Rule, base: RuleState, target: State, now: datetime, threshold: float | None, reason: str
) -> Step:
    """Move away from the current state, but a firing rule keeps firing for keep_firing_for."""
    if (
        base.state == State.FIRING
        and rule.keep_firing_for > 0
        and base.last_breach_at is not None
        and now - base.last_breach_at < timedelta(seconds=rule.keep_firing_for)
    ):
        return _stay(rule, base, now)
    return _move(rule, base, target, now, threshold, reason)


def _stay(rule: Rule, base: RuleState, now: datetime) -> Step:
    event = RENOTIFIED_EVENTS.get(base.state)
    if (
        event is not None
        and rule.renotify_every is not None
        and base.last_notified_at is not None
        and now - base.last_notified_at >= timedelta(seconds=rule.renotify_every)
    ):
        return Step(replace(base, last_notified_at=now), None, notify=event, renotify=True)
    return Step(base, None)


def _move(
    rule: Rule, base: RuleState, target: State, now: datetime, threshold: float | None, reason: str
) -> Step:
    if target == base.state:
        return _stay(rule, base, now)
    event = event_for(base.state, target)
    notify = event if event in NOTIFIED_EVENTS else None
    new = replace(
        base,
        state=target,
        since=now,
        pending_since=base.pending_since if target == State.PENDING else None,
        last_breach_at=base.last_breach_at if target == State.FIRING else None,
        last_notified_at=now if notify else base.last_notified_at,
    )
    transition = Transition(base.state, target, event, base.value, base.runs, threshold, reason)
    return Step(new, transition, notify=notify)
