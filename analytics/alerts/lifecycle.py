"""Start and stop alerting beside a store: the engine, its webhook dispatcher, the ingest trigger.

The server calls `start_alerts(ctx)` in its lifespan (and `stop_alerts(ctx)` before closing the
store); the scheduler's "alerts" job calls `run_alerts_job`, and `flowhistory alerts evaluate`
calls `evaluate_now`. Without a running server (CLI, notebooks, tests of the library)
`engine_for(ctx)` gives an engine that sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.alerts.engine import AlertEngine
from analytics.alerts.webhooks import DispatchSettings, WebhookDispatcher, utc_now
from analytics.core.context import Context


@dataclass
class Alerts:
    engine: AlertEngine
    dispatcher: WebhookDispatcher

    def close(self) -> None:
        self.engine.close()
        self.dispatcher.close()


def start_alerts(
    ctx: Context,
    *,
    clock: Callable[[], datetime] = utc_now,
    dispatch: DispatchSettings | None = None,
    ingest_trigger: bool | None = None,
) -> Alerts:
    """Set `ctx.alerts` and, unless disabled, listen to ingests (evaluated on a thread of ours)."""
    dispatcher = WebhookDispatcher(ctx, dispatch, clock=clock)
    engine = AlertEngine(ctx, dispatcher, clock=clock)
    alerts = Alerts(engine, dispatcher)
    ctx.alerts = alerts
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


def stop_alerts(ctx: Context) -> None:
    alerts = ctx.alerts
    if alerts is None:
        return
    if alerts.engine.on_ingest in ctx.ingest_listeners:
        ctx.ingest_listeners.remove(alerts.engine.on_ingest)
    alerts.close()
    ctx.alerts = None


def evaluate_now(ctx: Context, *, rule_ids: list[str] | None = None) -> dict[str, Any]:
    """One evaluation beside a store no server runs (the CLI): the rules are judged, transitions
    stored, and their webhooks sent (waited for, up to three webhook timeouts) before it returns,
    since the process exits after; then alerting stops again."""
    alerts = start_alerts(ctx, ingest_trigger=False)
    try:
        out = alerts.engine.evaluate(rule_ids=rule_ids)
        alerts.dispatcher.wait_idle(ctx.settings.alert_webhook_timeout_s * 3)
    finally:
        stop_alerts(ctx)
    return out


def engine_for(ctx: Context) -> AlertEngine:
    alerts = ctx.alerts
    return alerts.engine if alerts is not None else AlertEngine(ctx)


def run_alerts_job(ctx: Context) -> dict[str, Any]:
    """The scheduler's job: one full evaluation; its summary is the job's result."""
    return engine_for(ctx).evaluate()
