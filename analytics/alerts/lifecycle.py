"""Alerting beside a store: the engine, its webhook dispatcher, and their hooks on the Context.

`Alerts.start(ctx)` starts them and hooks them in: the engine is told of rule changes (a
rules-changed listener), of ingests when the ingest trigger is on (an ingest listener), and
answers evaluate-now and pause through the Context's `alert_evaluator` port. `stop()` unhooks
and stops them. The server's runtime (analytics/jobs/runtime.py) owns one; the CLI's `alerts
evaluate` starts one for the command. Without one, `evaluator(ctx)` gives an engine of the
call that sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.alerts.engine import AlertEngine
from analytics.alerts.rules import Rule
from analytics.alerts.webhooks import DispatchSettings, WebhookDispatcher
from analytics.core.clock import utc_now
from analytics.core.context import AlertEvaluator, Context


@dataclass
class Alerts:
    ctx: Context
    engine: AlertEngine
    dispatcher: WebhookDispatcher

    @classmethod
    def start(
        cls,
        ctx: Context,
        *,
        clock: Callable[[], datetime] = utc_now,
        dispatch: DispatchSettings | None = None,
        ingest_trigger: bool | None = None,
    ) -> Alerts:
        """Start the dispatcher and the engine (its ingest trigger thread unless disabled) and
        hook them into `ctx`. One per Context: a second would judge the same states twice."""
        if ctx.alert_evaluator is not None:
            raise RuntimeError("an alert engine already runs on this store")
        dispatcher = WebhookDispatcher(ctx, dispatch, clock=clock)
        engine = AlertEngine(ctx, dispatcher, clock=clock)
        alerts = cls(ctx, engine, dispatcher)
        ctx.alert_evaluator = alerts
        ctx.rules_changed_listeners.append(engine.refresh_watch)
        trigger = ctx.settings.alert_ingest_trigger if ingest_trigger is None else ingest_trigger
        if trigger:
            settings = ctx.settings
            engine.start_trigger(
                settings.alert_ingest_debounce_s,
                settings.alert_ingest_rest_factor,
                settings.alert_ingest_max_window_s or None,
            )
            ctx.ingest_listeners.append(engine.on_ingest)
        return alerts

    # -- the port (AlertEvaluator) -------------------------------------------------------------

    def evaluate(self, *, rule_ids: list[str] | None = None) -> dict[str, Any]:
        return self.engine.evaluate(rule_ids=rule_ids)

    def set_paused(self, rule: Rule, paused: bool) -> None:
        self.engine.set_paused(rule, paused)

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Unhook first (no new work arrives), then stop the trigger thread and the dispatcher."""
        ctx = self.ctx
        if self.engine.on_ingest in ctx.ingest_listeners:
            ctx.ingest_listeners.remove(self.engine.on_ingest)
        if self.engine.refresh_watch in ctx.rules_changed_listeners:
            ctx.rules_changed_listeners.remove(self.engine.refresh_watch)
        if ctx.alert_evaluator is self:
            ctx.alert_evaluator = None
        self.engine.close()
        self.dispatcher.close()


def start_alerts(
    ctx: Context,
    *,
    clock: Callable[[], datetime] = utc_now,
    dispatch: DispatchSettings | None = None,
    ingest_trigger: bool | None = None,
) -> Alerts:
    """`Alerts.start`, for callers written before it."""
    return Alerts.start(ctx, clock=clock, dispatch=dispatch, ingest_trigger=ingest_trigger)


def stop_alerts(ctx: Context) -> None:
    """Stop the alerts running on `ctx`, for callers that kept no handle (the CLI's evaluate);
    prefer `Alerts.stop()`."""
    running = ctx.alert_evaluator
    if isinstance(running, Alerts):
        running.stop()


def evaluator(ctx: Context) -> AlertEvaluator:
    """The running engine when there is one (one evaluation at a time, notifications sent),
    else an engine for this call that sends nothing (CLI, notebooks, library tests)."""
    running = ctx.alert_evaluator
    return running if running is not None else AlertEngine(ctx)


def engine_of(ctx: Context) -> AlertEngine:
    """The running engine (its lock, its dispatcher) when there is one, else an engine of the
    call that sends nothing: for what the AlertEvaluator port does not carry (a rule's change)."""
    running = ctx.alert_evaluator
    return running.engine if isinstance(running, Alerts) else AlertEngine(ctx)


def evaluate_now(ctx: Context, *, rule_ids: list[str] | None = None) -> dict[str, Any]:
    """One evaluation beside a store no server runs (the CLI): the rules are judged, transitions
    stored, and their webhooks sent (waited for, up to three webhook timeouts) before it returns,
    since the process exits after; then alerting stops again."""
    alerts = Alerts.start(ctx, ingest_trigger=False)
    try:
        out = alerts.engine.evaluate(rule_ids=rule_ids)
        alerts.dispatcher.wait_idle(ctx.settings.alert_webhook_timeout_s * 3)
    finally:
        alerts.stop()
    return out


def run_alerts_job(ctx: Context) -> dict[str, Any]:
    """The scheduler's job: one full evaluation; its summary is the job's result."""
    return evaluator(ctx).evaluate()
