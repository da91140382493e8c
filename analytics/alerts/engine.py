"""Evaluation: measure every target, step its state machine, store what changed, notify.

One evaluation at a time (a lock): the scheduler's pass, an ingest-triggered pass and an
evaluate-now call never judge the same state twice. Reads go through `ctx.store.read`; the new
states, the transitions and their notifications (outbox rows, held-back deliveries) are written
in one `ctx.store.write`, for rules, flows and channels still there when it commits; after the
commit the notifications are handed to the webhook dispatcher, which sends them on its own
threads. A channel hears a flow's alerts only while its creator sees every run of the flow.

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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import orjson

from analytics.access.auth import role_refusal
from analytics.access.permissions import Viewer, grant_for
from analytics.alerts import repository as repo
from analytics.alerts.evaluate import Target, error_text, measure, resolve_targets
from analytics.alerts.rules import Rule, State
from analytics.alerts.silences import Silencer
from analytics.alerts.state_machine import RENOTIFIED_EVENTS, RuleState, Step, Transition, event_for, step
from analytics.alerts.webhooks import Notification, WebhookDispatcher, outbox_rows
from analytics.core.clock import iso_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import AccessDenied
from analytics.core.jsonio import dumps
from analytics.core.store import Connection

log = logging.getLogger("flowhistory.alerts")

T = TypeVar("T")

# a PATCH changing what a rule measures ends these states (receivers heard of them) as resolved
_OPEN_STATES = (State.FIRING, State.WARNING, State.NO_DATA)
CHANGED_REASON = "the rule was changed: judged afresh"


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


@dataclass(slots=True)
class _Batch:
    """What one judgement stores: states, transitions, notifications to send (their outbox rows)
    and notifications a silence held back (their delivery rows), made before the write."""

    states: dict[tuple[str, str], RuleState] = field(default_factory=dict)
    transitions: list[repo.StoredTransition] = field(default_factory=list)
    queued: list[Notification] = field(default_factory=list)
    held: list[repo.Delivery] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.transitions or self.queued or self.held)

    def store(self, c: Connection) -> _Batch:
        """On the writer, in one transaction: what is still there when it commits. A rule or a
        flow deleted while it was judged kept states (and got no_data transitions and notices)
        for ever; a channel deleted meanwhile kept outbox rows no attempt could send. Answers
        what was written (the caller pushes its `queued` after the commit); it only reads
        `self`, as the writer may run it twice (alone again after a failed group)."""
        rules = {k[0] for k in self.states} | {t.rule_id for t in self.transitions}
        rules |= {n.rule_id for n in self.queued if n.rule_id} | {d.rule_id for d in self.held if d.rule_id}
        flows = {k[1] for k in self.states} | {t.flow_id for t in self.transitions}
        flows |= {n.flow_id for n in self.queued if n.flow_id} | {d.flow_id for d in self.held if d.flow_id}
        channels = sorted({n.channel_id for n in self.queued} | {d.channel_id for d in self.held})
        live_rules = repo.existing_rule_ids(c, rules)
        live_flows = repo.existing_flow_ids(c, flows)
        gone_channels = set(repo.missing_channels(c, channels))

        def there(rule_id: str | None, flow_id: str | None, channel_id: str | None = None) -> bool:
            return rule_id in live_rules and flow_id in live_flows and channel_id not in gone_channels

        kept = _Batch(
            {k: v for k, v in self.states.items() if there(*k)},
            [t for t in self.transitions if there(t.rule_id, t.flow_id)],
            [n for n in self.queued if there(n.rule_id, n.flow_id, n.channel_id)],
            [d for d in self.held if there(d.rule_id, d.flow_id, d.channel_id)],
        )
        repo.save_states(c, kept.states)
        repo.insert_transitions(c, kept.transitions)
        if kept.queued:
            repo.queue_notifications(c, outbox_rows(kept.queued, utc_now()))
        repo.record_suppressed(c, kept.held)
        return kept


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

            # one write: the states, their transitions, the outbox rows of their notifications
            # and the held-back ones commit together or not at all. A crash before the commit
            # saved nothing, so the next evaluation judges the same change again and notifies
            # it then; after it, the outbox has every notification and a restart sends them
            # (at worst twice, never lost). Only then are they handed to the senders.
            queued, held = self._notices(sends, now, failed)
            batch = _Batch(new_states, transitions, queued, held)
            kept = self.ctx.store.write(batch.store) if batch else batch
            if self.dispatcher is not None:
                self.dispatcher.push(kept.queued)
            self.evaluations += 1
        errors = [{"rule_id": rid, "flow_id": None, "error": e} for rid, e in unreadable]
        errors += [{"rule_id": k[0], "flow_id": k[1], "error": e} for k, e in sorted(failed.items())]
        return {
            "rules": len(active),
            "targets": len(targets),
            "transitions": len(kept.transitions),
            "notifications": len(kept.queued),
            "silenced": len(kept.held),
            "errors": errors,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    def _notices(
        self, sends: list[_Send], now: datetime, failed: dict[tuple[str, str], str]
    ) -> tuple[list[Notification], list[repo.Delivery]]:
        """The notifications to send and those a silence holds back (logged), one per channel,
        made before the write that stores them. A channel hears a (rule, flow) only while its
        creator sees every run of the flow (`_hears`). A notification that cannot be made is
        logged and its error put in `failed`. None without a dispatcher: an engine of the call
        (CLI, notebooks) sends nothing."""
        if not sends or self.dispatcher is None:
            return [], []
        rule_ids = sorted({x.target.rule.id for x in sends})

        def read(c: Connection) -> tuple[dict[str, list[str]], dict[str, str]]:
            links = repo.channel_ids_of_rules(c, rule_ids)
            linked = sorted({ch for chs in links.values() for ch in chs})
            return links, {ch.id: ch.created_by for ch in repo.load_channels(c, linked)} if linked else {}

        links, creators = self.ctx.store.read(read)
        hears: dict[tuple[str, str], bool] = {}
        unheard: list[tuple[str, str, str]] = []  # (channel, its creator, flow)
        out: list[Notification] = []
        held: list[repo.Delivery] = []
        for x in sends:
            if self.ctx.directory.flow(x.target.flow_id) is None:
                continue  # deleted while it was judged: the write drops its state too
            channels = []
            for ch in links.get(x.target.rule.id, []):
                creator = creators.get(ch)
                if creator is None:
                    continue  # deleted since the rule was read
                key = (creator, x.target.flow_id)
                if key not in hears:
                    hears[key] = self._hears(*key)
                if hears[key]:
                    channels.append(ch)
                else:
                    unheard.append((ch, creator, x.target.flow_id))
            try:
                queued, suppressed = self._notification(x, channels, now)
            except Exception as exc:  # a bug making this one: the others are still sent
                log.exception("alert notification of rule %s for flow %s could not be made", *x.target.key)
                failed[x.target.key] = error_text(exc)
                continue
            out.extend(queued)
            held.extend(suppressed)
        if unheard:  # once a pass: a demoted admin's channel would otherwise log every notice
            ch, creator, flow = unheard[0]
            log.warning(
                "%d alert notification(s) not made for channels whose creator does not see every run"
                " of the flow (e.g. channel %s of %s, flow %s)",
                len(unheard),
                ch,
                creator,
                flow,
            )
        return out, held

    def _hears(self, user_id: str, flow_id: str) -> bool:
        """Whether a channel made by this user may get this flow's alert values: they are computed
        over every run, so only those who see every run (admins, the owner, write-grantees), as
        the directory says now: an admin demoted since making the channel stops hearing at once,
        and a user gone or deactivated (`pending`, a role Open WebUI does not admit) hears
        nothing (as a rule is seen: service._sees_flow)."""
        user = self.ctx.directory.user(user_id)
        if user is None or role_refusal(self.ctx, user.role) is not None:
            return False
        viewer = Viewer(user.id, user.role)
        if viewer.is_admin:
            return True
        flow = self.ctx.directory.flow(flow_id)
        if flow is None:
            return False
        try:
            return grant_for(self.ctx.directory, viewer, flow).sees_all
        except AccessDenied:  # a directory only admins may read (an export folder)
            return False

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

    # -- a rule changed ----------------------------------------------------------------------

    def change_rule(self, rule: Rule, write: Callable[[Connection], T], *, rescope: bool) -> T:
        """Store a change of `rule` (`write`, on the writer; answers what it answers). When the
        change alters what the rule measures (`rescope`: metric, window, scope), its states no
        longer mean anything and are cleared in the same transaction, but receivers were told of
        some: each FIRING, WARNING or NO_DATA state first gets a transition to OK (reason
        CHANGED_REASON) and a "resolved" notification, queued in the outbox in that transaction
        and pushed after it commits; silences hold it back as in an evaluation. Cleared
        silently, the history ended at OK->FIRING while the state said OK, and nobody heard
        that the alert was over. Under the engine's lock: no evaluation judges the old scope
        meanwhile."""
        if not rescope:  # its states stand: no need to wait for an evaluation in progress
            return self.ctx.store.write(write)
        with self.lock:
            now = self.clock()
            states = self.ctx.store.read(lambda c: repo.load_states(c, [rule.id]))
            silencer = Silencer(self.ctx.store.read(lambda c: repo.load_silences(c, ending_after=now)), now)
            transitions: list[repo.StoredTransition] = []
            sends: list[_Send] = []
            for key, prev in sorted(states.items()):
                if prev.state not in _OPEN_STATES:
                    continue  # PENDING, PAUSED, OK: receivers heard nothing to take back
                moved = Transition(
                    prev.state,
                    State.OK,
                    event_for(prev.state, State.OK),
                    prev.value,
                    prev.runs,
                    None,
                    CHANGED_REASON,
                )
                after = replace(prev, state=State.OK, since=now, evaluated_at=now)
                # "resolved" after NO_DATA too (event_for says "ok"): receivers heard "no_data",
                # as a silence's end tells them (see _silence)
                resolved = Step(after, moved, notify="resolved")
                send = _silence(Target(rule, key[1]), resolved, silencer.silence_of(*key), now)
                assert send is not None and send.step.transition is not None
                tid = str(uuid.uuid4())
                transitions.append(repo.StoredTransition(tid, rule.id, key[1], now, send.step.transition))
                sends.append(replace(send, transition_id=tid))
            queued, held = self._notices(sends, now, {})  # one that cannot be made is logged
            batch = _Batch(transitions=transitions, queued=queued, held=held)

            def save(c: Connection) -> tuple[T, _Batch]:
                done = write(c)  # raises (nothing is written) when the rule is gone
                kept = batch.store(c)
                repo.clear_states(c, rule.id)  # judged afresh at the next evaluation
                return done, kept

            done, kept = self.ctx.store.write(save)
            if self.dispatcher is not None:
                self.dispatcher.push(kept.queued)
            return done

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
