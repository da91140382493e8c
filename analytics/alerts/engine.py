"""Evaluation: measure every target, step its state machine, store what changed, notify.

One evaluation at a time (a lock): the scheduler's pass, an ingest-triggered pass and an
evaluate-now call never judge the same state twice. Reads go through `ctx.store.read`; the new
states and the transitions are written in one `ctx.store.write`; notifications are handed to
the webhook dispatcher, which sends them on its own threads.

Ingest trigger: `on_ingest` is the context's ingest listener. It runs on the writer thread
after a commit, so it only adds the flow ids to a pending set (when an active rule watches
them) and wakes the trigger thread; that thread waits `debounce_s` so a burst of commits
becomes one evaluation, then judges only the rules of those flows (from cached rules) whose
window is at most `max_window_s` (a week-long window barely moves with one more run; the
scheduled pass judges those, and they are what makes a pass costly at 10M runs), then
rests `rest_factor` times as long as the pass took: under sustained ingest the evaluator is
busy at most 1 / (1 + rest_factor) of the time (measured: without the rest and the window
limit, single-run ingest on 1M runs with 1,000 rules lost half its throughput).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from analytics.alerts import repository as repo
from analytics.alerts.evaluate import Target, error_text, measure, resolve_targets
from analytics.alerts.rules import Rule, State
from analytics.alerts.silences import Silencer
from analytics.alerts.state_machine import RENOTIFIED_EVENTS, RuleState, Step, Transition, event_for, step
from analytics.alerts.webhooks import Notification, WebhookDispatcher
from analytics.core.clock import iso_utc, utc_now
from analytics.core.context import Context
from analytics.core.jsonio import dumps

log = logging.getLogger("flowhistory.alerts")


def rule_summary(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "metric": rule.metric.value,
        "operator": rule.operator.value,
        "threshold": rule.threshold,
        "warning_threshold": rule.warning_threshold,
        "recovery_threshold": rule.recovery_threshold,
        "window_s": rule.window,
        "flow_id": rule.flow_id,
        "owned_by": rule.owned_by,
        "flow_version": rule.flow_version,
        "node_id": rule.node_id,
        "model": rule.model,
    }


def _level(rule: Rule, state: State) -> float | None:
    """The threshold a state is judged by: a reminder (no transition) says which it still breaks."""
    if state == State.WARNING:
        return rule.warning_threshold
    return rule.threshold if state == State.FIRING else None


@dataclass(frozen=True, slots=True)
class _Send:
    """A notification to send (or, with `silence_id`, to log as held back by that silence)."""

    target: Target
    step: Step
    silence_id: str | None = None
    transition_id: str | None = None
    note: str | None = None


def _heard(state: State) -> str:
    """What receivers were last told, as of a state they were notified of (PENDING, PAUSED and
    OK tell them nothing new: they last heard "ok" or a resolution)."""
    return RENOTIFIED_EVENTS.get(state, "ok")


def _silence(t: Target, s: Step, silence_id: str | None, now: datetime) -> _Send | None:
    """What to notify for this step, silences considered (None: the step as it is).

    Inside a silence a notification is held back (logged, not sent), and the state remembers
    in `muted_event` what receivers had last heard when the first one was held. At the first
    evaluation after the silence, if the state differs from that, it is sent once (FIRING,
    WARNING, NO_DATA as themselves; OK as "resolved"): receivers learn what they missed, as
    Alertmanager does. A rule that fired and recovered inside the silence sends nothing."""
    state = s.state
    if s.notify is not None:
        if silence_id is None:
            return _Send(t, replace(s, state=replace(state, muted_event=None)))
        heard = state.muted_event
        if heard is None:
            heard = _heard(s.transition.from_state) if s.transition is not None else _heard(state.state)
        held = replace(s, state=replace(state, muted_event=heard))
        if s.transition is not None:
            held = replace(held, transition=replace(s.transition, silenced_by=silence_id))
        return _Send(t, held, silence_id)
    if state.muted_event is None or silence_id is not None or state.state == State.PENDING:
        return None  # nothing held back, still silenced, or not settled yet
    now_is = _heard(state.state)
    if now_is == state.muted_event:  # what they heard is still true
        return _Send(t, Step(replace(state, muted_event=None), None))
    event = "resolved" if now_is == "ok" else now_is
    after = replace(state, muted_event=None, last_notified_at=now)
    note = f"{state.state.value} when the silence ended"
    return _Send(t, Step(after, None, notify=event, renotify=True), None, note=note)


class AlertEngine:
    def __init__(
        self,
        ctx: Context,
        dispatcher: WebhookDispatcher | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self.clock = clock
        self.lock = threading.RLock()
        self._watched_flows: frozenset[str] = frozenset()
        self._rules: list[Rule] | None = None
        self.trigger_max_window_s: float | None = None
        self._watched_owners: frozenset[str] = frozenset()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._busy = False
        self._stop = threading.Event()
        self._trigger: threading.Thread | None = None
        self.last_trigger: dict[str, Any] | None = None
        self.trigger_evaluations = 0  # ingest-triggered passes so far, and their total time
        self.trigger_ms = 0.0
        self.evaluations = 0  # every pass (scheduled, on demand, ingest-triggered): the /metrics count

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(
        self,
        now: datetime | None = None,
        *,
        flow_ids: set[str] | None = None,
        rule_ids: list[str] | None = None,
        max_window_s: float | None = None,
    ) -> dict[str, Any]:
        """Judge every active rule (or these rules, or only these flows, or only windows up to
        `max_window_s`) at `now`.

        Each (rule, flow) is judged on its own: one that cannot be read, measured or judged keeps
        its state, is logged, and is listed in the summary's `errors` (rule_id, flow_id, error);
        the others are judged, stored and notified as usual."""
        started = time.perf_counter()
        with self.lock:
            now = now or self.clock()
            unreadable: list[tuple[str, str]] = []
            if rule_ids is None and flow_ids is not None and self._rules is not None:
                rules = self._rules  # ingest-triggered: the cached rules (kept fresh by refresh_watch)
            else:
                rules = self.ctx.store.read(lambda c: repo.load_rules(c, rule_ids, unreadable=unreadable))
            if rule_ids is None:
                self._watch(rules)
            active = [r for r in rules if not r.paused and (max_window_s is None or r.window <= max_window_s)]
            targets = resolve_targets(self.ctx, active, flow_ids)
            ids = sorted({t.rule.id for t in targets})
            states = self.ctx.store.read(lambda c: repo.load_states(c, ids)) if ids else {}
            failed: dict[tuple[str, str], str] = {}
            values = measure(self.ctx, targets, now, errors=failed)
            silencer = Silencer(self.ctx.store.read(lambda c: repo.load_silences(c, ending_after=now)), now)
            new_states: dict[tuple[str, str], RuleState] = {}
            transitions: list[repo.StoredTransition] = []
            sends: list[_Send] = []
            for t in targets:
                if t.key not in values:
                    continue  # could not be measured (in `failed`): its state stays as it was
                try:
                    s = step(t.rule, states.get(t.key), values[t.key], now)
                    send = _silence(t, s, silencer.silence_of(*t.key), now)
                    transition = None
                    if s.transition is not None:
                        transition = send.step.transition if send is not None else s.transition
                        assert transition is not None
                except Exception as exc:  # a bug judging this target: the others are still judged
                    log.exception("alert rule %s could not be judged for flow %s", *t.key)
                    failed[t.key] = error_text(exc)
                    continue
                new_states[t.key] = send.step.state if send is not None else s.state
                tid = None
                if transition is not None:
                    tid = str(uuid.uuid4())
                    transitions.append(repo.StoredTransition(tid, t.rule.id, t.flow_id, now, transition))
                if send is not None and send.step.notify is not None:
                    sends.append(replace(send, transition_id=tid))

            def save(c: Any) -> set[str]:
                """Only for rules still there when this commits: a rule deleted while it was
                measured kept states and transitions of a rule gone, listed, and notified."""
                live = repo.existing_rule_ids(
                    c, {k[0] for k in new_states} | {x.target.rule.id for x in sends}
                )
                repo.save_states(c, {k: v for k, v in new_states.items() if k[0] in live})
                transitions[:] = [x for x in transitions if x.rule_id in live]
                repo.insert_transitions(c, transitions)
                return live

            live = self.ctx.store.write(save) if new_states or sends else set()
            sends = [x for x in sends if x.target.rule.id in live]
            notified, held = self._notify(sends, now, failed)
            self.evaluations += 1
        errors = [{"rule_id": rid, "flow_id": None, "error": e} for rid, e in unreadable]
        errors += [{"rule_id": k[0], "flow_id": k[1], "error": e} for k, e in sorted(failed.items())]
        return {
            "rules": len(active),
            "targets": len(targets),
            "transitions": len(transitions),
            "notifications": notified,
            "silenced": held,
            "errors": errors,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    def _notify(
        self, sends: list[_Send], now: datetime, failed: dict[tuple[str, str], str]
    ) -> tuple[int, int]:
        """Hand the notifications to the dispatcher; log the silenced ones as held back.
        Answers (notifications queued, notifications silenced), one per channel each; a
        notification that cannot be made is logged and its error put in `failed`."""
        if not sends or self.dispatcher is None:
            return 0, 0
        links = self.ctx.store.read(
            lambda c: repo.channel_ids_of_rules(c, sorted({x.target.rule.id for x in sends}))
        )
        out: list[Notification] = []
        held: list[repo.Delivery] = []
        for x in sends:
            try:
                queued, suppressed = self._notification(x, links.get(x.target.rule.id, []), now)
            except Exception as exc:  # a bug making this one: the others are still sent
                log.exception("alert notification of rule %s for flow %s could not be made", *x.target.key)
                failed[x.target.key] = error_text(exc)
                continue
            out.extend(queued)
            held.extend(suppressed)
        if held:
            self.ctx.store.write(lambda c: repo.record_suppressed(c, held))
        self.dispatcher.enqueue(out)
        return len(out), len(held)

    def _notification(
        self, x: _Send, channels: list[str], now: datetime
    ) -> tuple[list[Notification], list[repo.Delivery]]:
        """One notification, per channel: to send, or (silenced) to log as held back."""
        t, s, tid = x.target, x.step, x.transition_id
        assert s.notify is not None
        if not channels:
            return [], []
        transition = s.transition
        body = dumps(
            {
                "id": str(uuid.uuid4()),
                "event": s.notify,
                "renotify": s.renotify,
                "state": s.state.state.value,
                "previous_state": transition.from_state.value if transition else s.state.state.value,
                "occurred_at": iso_utc(now),
                "value": s.state.value,
                "runs": s.state.runs,
                "threshold": transition.threshold if transition else _level(t.rule, s.state.state),
                "reason": transition.reason if transition else x.note or f"still {s.state.state.value}",
                "transition_id": tid,
                "flow_id": t.flow_id,
                "rule": rule_summary(t.rule),
            }
        )
        nid = orjson.loads(body)["id"]
        if x.silence_id is not None:
            held = [
                repo.Delivery(
                    str(uuid.uuid4()),
                    nid,
                    ch,
                    t.rule.id,
                    t.flow_id,
                    tid,
                    s.notify,
                    0,
                    now,
                    False,
                    None,
                    f"silenced by {x.silence_id}",
                    None,
                    False,
                    body.decode(),
                )
                for ch in channels
            ]
            return [], held
        return [Notification(nid, ch, s.notify, body, t.rule.id, t.flow_id, tid) for ch in channels], []

    # -- pause and resume --------------------------------------------------------------------

    def set_paused(self, rule: Rule, paused: bool) -> None:
        """Pause: every (rule, flow) goes PAUSED; resume: back to OK, judged afresh next time.
        Both are transitions, stored with the rule change in one transaction."""
        with self.lock:
            now = self.clock()
            states = self.ctx.store.read(lambda c: repo.load_states(c, [rule.id]))
            keys = {t.key for t in resolve_targets(self.ctx, [rule])} | set(states)
            new_states: dict[tuple[str, str], RuleState] = {}
            transitions = []
            for key in sorted(keys):
                prev = states.get(key) or RuleState(State.OK, since=now)
                target = State.PAUSED if paused else State.OK
                if prev.state == target or (not paused and prev.state != State.PAUSED):
                    continue
                reason = "paused" if paused else "resumed"
                new_states[key] = RuleState(
                    target, since=now, value=prev.value, runs=prev.runs, evaluated_at=now
                )
                transitions.append(
                    repo.StoredTransition(
                        str(uuid.uuid4()),
                        key[0],
                        key[1],
                        now,
                        Transition(
                            prev.state,
                            target,
                            event_for(prev.state, target),
                            prev.value,
                            prev.runs,
                            None,
                            reason,
                        ),
                    )
                )

            def save(c: Any) -> None:
                repo.set_paused(c, rule.id, paused, now)
                repo.save_states(c, new_states)
                repo.insert_transitions(c, transitions)

            self.ctx.store.write(save)

    # -- ingest trigger ----------------------------------------------------------------------

    def _watch(self, rules: list[Rule]) -> None:
        self._rules = rules
        limit = self.trigger_max_window_s
        active = [r for r in rules if not r.paused and (limit is None or r.window <= limit)]
        self._watched_flows = frozenset(r.flow_id for r in active if r.flow_id is not None)
        self._watched_owners = frozenset(r.owned_by for r in active if r.owned_by is not None)

    def refresh_watch(self) -> None:
        """After a rule changed: which flows' ingests should trigger an evaluation."""
        self._watch(self.ctx.store.read(repo.load_rules))

    def on_ingest(self, flow_ids: set[str]) -> None:
        """The ingest listener: on the writer thread, so a set update and an event, no I/O."""
        owners = self._watched_owners
        hit = flow_ids & self._watched_flows
        if owners:
            for f in flow_ids - hit:
                acl = self.ctx.directory.flow(f)
                if acl is not None and acl.owner_id in owners:
                    hit.add(f)
        if hit:
            with self._pending_lock:
                self._pending |= hit
            self._wake.set()

    def start_trigger(
        self, debounce_s: float, rest_factor: float = 9.0, max_window_s: float | None = None
    ) -> None:
        self.trigger_max_window_s = max_window_s
        self.refresh_watch()
        self._trigger = threading.Thread(
            target=self._trigger_loop,
            args=(debounce_s, rest_factor),
            name="flowhistory-alerts-ingest",
            daemon=True,
        )
        self._trigger.start()

    def _trigger_loop(self, debounce_s: float, rest_factor: float) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            if debounce_s > 0:
                self._stop.wait(debounce_s)  # let the burst finish: one evaluation for all of it
            with self._pending_lock:
                flows, self._pending = self._pending, set()
                self._wake.clear()
                self._busy = bool(flows)
            if not flows or self._stop.is_set():
                continue
            started = time.perf_counter()
            try:
                self.last_trigger = self.evaluate(flow_ids=flows, max_window_s=self.trigger_max_window_s)
                self.trigger_evaluations += 1
                self.trigger_ms += self.last_trigger["duration_ms"]
            except Exception:  # the store closing, a bug: the next ingest tries again
                log.exception("ingest-triggered alert evaluation failed")
            finally:
                with self._pending_lock:
                    self._busy = False
            # bound the share of time spent here under sustained ingest: a pass of d seconds is
            # followed by rest_factor * d of rest (9: at most a tenth of one core)
            self._stop.wait((time.perf_counter() - started) * rest_factor)

    def wait_trigger_idle(self, timeout: float = 10.0) -> bool:
        """True once no ingest-triggered evaluation is waiting or running (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._pending_lock:
                if not self._pending and not self._wake.is_set() and not self._busy:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._trigger is not None:
            self._trigger.join(30)
