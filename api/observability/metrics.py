"""Prometheus metrics: a registry per app, request metrics, and a collector reading the library.

Request counts and latencies are observed by the middleware (api/observability/middleware.py).
Everything else is read at scrape time from what analytics keeps as plain numbers (the store's
write counters and queue, the scheduler's job states, the alert engine's and dispatcher's
counts, the export status, file sizes) or observed through the store's commit listener (the
group-commit histograms): analytics never imports the metrics library.

`/metrics` on the API's port is admin-only. With `FLOWHISTORY_METRICS_PORT` set it is also
served, without auth, on that port of the same host (for a scraper holding no key; bind the
host to a private address, or firewall that port).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from analytics import exports
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.jobs.runtime import Runtime
from api.dependencies import AdminUser
from api.observability.middleware import Observability

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class MetricsPortUnavailable(RuntimeError):
    """FLOWHISTORY_METRICS_PORT cannot be served: the server does not start, rather than run
    without the port a scraper was told to read."""


class _SaidInOneLine(logging.Filter):
    """Drops uvicorn's record of `error`'s traceback. A failed startup is logged by uvicorn as
    the traceback starlette made of the lifespan's exception: for a busy metrics port that was
    a traceback escaped on one line that never named the setting, so the cause is logged in one
    line instead (Metrics.start) and this filter keeps the traceback out."""

    def __init__(self, error: MetricsPortUnavailable) -> None:
        super().__init__()
        # the traceback's last line (traceback.format_exception_only)
        self.last_line = f"{type(error).__module__}.{type(error).__qualname__}: {error}"

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str)
            and record.msg.startswith("Traceback")
            and record.msg.rstrip().endswith(self.last_line)
        )


def _refuse_to_start(message: str) -> MetricsPortUnavailable:
    """The error that stops the server's start, logged in one line (see _SaidInOneLine)."""
    log.critical("cannot start: %s", message)
    error = MetricsPortUnavailable(message)
    uvicorn_log = logging.getLogger("uvicorn.error")
    for old in [f for f in uvicorn_log.filters if isinstance(f, _SaidInOneLine)]:
        uvicorn_log.removeFilter(old)
    uvicorn_log.addFilter(_SaidInOneLine(error))
    return error


def _serve_metrics_port(settings: Settings, registry: CollectorRegistry) -> Any:
    """The metrics port's server, or MetricsPortUnavailable naming the setting and the port."""
    from prometheus_client import start_http_server

    port = settings.metrics_port
    assert port is not None
    if port == settings.port:  # Settings refuses it; `serve --port` can still make it so
        raise _refuse_to_start(
            f"FLOWHISTORY_METRICS_PORT={port} is also the API's port (FLOWHISTORY_PORT or "
            "--port): the metrics need a port of their own"
        )
    try:
        server, _ = start_http_server(port, settings.host, registry=registry)
    except OSError as exc:
        why = (
            "is in use by another process (choose another port, or stop what holds it)"
            if exc.errno == errno.EADDRINUSE
            else f"cannot be listened on ({exc.strerror or exc})"
        )
        raise _refuse_to_start(f"FLOWHISTORY_METRICS_PORT={port}: {settings.host}:{port} {why}") from exc
    return server


class LibraryCollector(Collector):
    """Reads the running server's numbers at scrape time; each part answers what it can."""

    def __init__(self, ctx: Context, runtime: Runtime | None) -> None:
        self.ctx = ctx
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        for part in (self._store, self._jobs, self._alerts, self._export, self._openwebui):
            try:
                yield from part()
            except Exception:  # a scrape must not fail because one part could not be read
                log.exception("metrics: %s could not be read", part.__name__)

    def _openwebui(self) -> Iterator[Metric]:
        """In Open WebUI mode: how old the mirror of its users, groups and flows is. Requests are
        served from it while Open WebUI cannot be read (by design), so an operator alerts on its
        age: past a few seconds, role changes and deletions are not taking effect."""
        directory = self.ctx.directory
        if directory.external and directory.synced_at:
            yield GaugeMetricFamily(
                "flowhistory_openwebui_mirror_age_seconds",
                "Seconds since Open WebUI's users, groups and flows were last read",
                value=max(0.0, time.time() - directory.synced_at),
            )

    def _store(self) -> Iterator[Metric]:
        store = self.ctx.store
        stats = store.stats
        yield CounterMetricFamily(
            "flowhistory_acknowledged_runs",
            "Runs committed and acknowledged to their caller (single POST and batch)",
            value=stats.rows.get("executions", 0),
        )
        yield CounterMetricFamily(
            "flowhistory_store_writes", "Writes the store's writer committed", value=stats.committed_tasks
        )
        yield CounterMetricFamily(
            "flowhistory_store_write_failures",
            "Writes answered with an error (refusals on a full disk included)",
            value=stats.failed_tasks,
        )
        refusals = CounterMetricFamily(
            "flowhistory_store_write_refusals", "Writes refused without being stored", labels=["reason"]
        )
        refusals.add_metric(["disk_full"], stats.refused_full)
        yield refusals
        yield GaugeMetricFamily(
            "flowhistory_store_disk_full",
            "1 while the store's disk is full (writes refused, deletes run), else 0",
            value=int(store.full),
        )
        yield GaugeMetricFamily(
            "flowhistory_store_unwritable",
            "1 while the store's folder cannot be written (every write refused, 503), else 0",
            value=int(store.unwritable),
        )
        yield GaugeMetricFamily(
            "flowhistory_writer_queue_depth", "Writes waiting for the writer", value=store.queue_depth()
        )
        yield GaugeMetricFamily(
            "flowhistory_group_commit_last_size", "Writes in the last group commit", value=stats.last_batch
        )
        sizes = GaugeMetricFamily(
            "flowhistory_store_file_bytes", "Size of the store's files", labels=["file"]
        )
        wal = store.path.with_name(store.path.name + ".wal")
        for label, path in (("db", store.path), ("wal", wal)):
            with contextlib.suppress(OSError):
                sizes.add_metric([label], path.stat().st_size if path.exists() else 0)
        yield sizes

    def _jobs(self) -> Iterator[Metric]:
        if self.runtime is None:
            return
        states = self.runtime.jobs()
        runs = CounterMetricFamily("flowhistory_job_runs", "Finished runs of each job", labels=["job"])
        failures = CounterMetricFamily("flowhistory_job_failures", "Failed runs of each job", labels=["job"])
        skipped = CounterMetricFamily(
            "flowhistory_job_skipped",
            "Runs skipped: another operation held what the job needs",
            labels=["job"],
        )
        running = GaugeMetricFamily("flowhistory_job_running", "1 while the job runs", labels=["job"])
        last = GaugeMetricFamily(
            "flowhistory_job_last_duration_seconds", "How long the job's last run took", labels=["job"]
        )
        for s in states:
            name = [s["name"]]
            runs.add_metric(name, s["runs"])
            failures.add_metric(name, s["failures"])
            skipped.add_metric(name, s["skipped"])
            running.add_metric(name, 1 if s["running"] else 0)
            if s["last_duration_s"] is not None:
                last.add_metric(name, s["last_duration_s"])
        yield from (runs, failures, skipped, running, last)

    def _alerts(self) -> Iterator[Metric]:
        alerts = self.runtime.alerts if self.runtime is not None else None
        if alerts is None:
            return
        yield CounterMetricFamily(
            "flowhistory_alert_evaluations", "Alert evaluation passes", value=alerts.engine.evaluations
        )
        sent = CounterMetricFamily(
            "flowhistory_alert_deliveries", "Webhook notification attempts by outcome", labels=["outcome"]
        )
        for outcome, n in dict(alerts.dispatcher.attempts).items():
            sent.add_metric([outcome], n)
        yield sent
        yield GaugeMetricFamily(
            "flowhistory_alert_deliveries_pending",
            "Notifications queued or being sent",
            value=alerts.dispatcher.pending(),
        )

    def _export(self) -> Iterator[Metric]:
        status = exports.export_status(self.ctx)
        last_ok = status.get("last_ok_cycle")
        yield GaugeMetricFamily(
            "flowhistory_export_failures_since_ok",
            "Export cycles failed since the last good one",
            value=status.get("failures_since_ok") or 0,
        )
        if last_ok is None:
            return  # never exported: no lag to state (absent, so an alert on it can say so)
        finished = datetime.fromisoformat(last_ok["finished_at"]).timestamp()
        yield GaugeMetricFamily(
            "flowhistory_export_last_success_timestamp_seconds",
            "When the last good export cycle ended",
            value=finished,
        )
        yield GaugeMetricFamily(
            "flowhistory_export_lag_seconds",
            "Seconds since the last good export cycle ended",
            value=max(0.0, time.time() - finished),
        )


class Metrics:
    """One app's registry and its request metrics; `attach` adds the library once the store is open."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flowhistory_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flowhistory_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_size = Histogram(
            "flowhistory_group_commit_size",
            "Writes per group commit",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_latency = Histogram(
            "flowhistory_group_commit_duration_seconds",
            "Time a group commit took",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # label children cached: .labels() takes a lock and builds a key on every call
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._collector: LibraryCollector | None = None
        self._ctx: Context | None = None
        self._server: Any = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def _on_commit(self, writes: int, seconds: float) -> None:
        self.commit_size.observe(writes)
        self.commit_latency.observe(seconds)

    def start(self, ctx: Context, runtime: Runtime | None, settings: Settings) -> None:
        """Attach to the open store (the lifespan's), and serve the separate port if set."""
        self.stop()
        self._ctx = ctx
        ctx.store.commit_listeners.append(self._on_commit)
        self._collector = LibraryCollector(ctx, runtime)
        self.registry.register(self._collector)
        if settings.metrics_port is not None:
            self._server = _serve_metrics_port(settings, self.registry)
            log.info("metrics served on http://%s:%d/metrics", settings.host, settings.metrics_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._collector is not None:
            self.registry.unregister(self._collector)
            self._collector = None
        if self._ctx is not None:
            with contextlib.suppress(ValueError):
                self._ctx.store.commit_listeners.remove(self._on_commit)
            self._ctx = None

    def render(self) -> bytes:
        return generate_latest(self.registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _: AdminUser) -> Response:
    """Prometheus text format, admin-only."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, settings: Settings) -> Metrics | None:
    """The middleware (outermost: added last) and, if metrics are on, the route; call after the
    other middleware."""
    found = Metrics() if settings.metrics_enabled else None
    app.state.metrics = found
    app.add_middleware(Observability, observe=found.observe if found is not None else None)
    if found is not None:
        app.include_router(router)
    return found
