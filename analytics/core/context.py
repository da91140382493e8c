"""Open a store with everything that lives beside it: migrations, the directory, the counters.

The server, the CLI and notebooks all start here; `Context` is what analytics functions take
first. It is the data plane only: what the store holds and in-memory mirrors of it. The
server's background parts (scheduler, alert engine, webhooks) live in
`analytics.jobs.runtime.Runtime`, which hooks into a Context through the listeners and the one
port below and unhooks when it stops; the CLI and notebooks have none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from analytics.access.directory import Directory
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.errors import InvalidInput
from analytics.core.store import Connection, Store
from analytics.cost.prices import PriceTable, replace_prices, shipped_prices
from analytics.history.changes import RollupState
from analytics.history.counters import Counters
from analytics.history.page_boundaries import PageBoundaries

log = logging.getLogger("flowhistory")

# called on the writer thread after a commit with the flow ids of the runs it stored; a
# listener must return at once (hand work to its own thread) and never raise into ingest
IngestListener = Callable[[set[str]], None]
# called on the caller's thread after an alert rule was created, changed, paused or deleted
# (committed); the alert engine refreshes which flows' ingests it watches
RulesChangedListener = Callable[[], None]


class AlertEvaluator(Protocol):
    """The port through which alerting judges now (evaluate, pause) when a runtime runs one:
    its engine keeps one evaluation at a time and hands notifications to its webhook
    dispatcher. Without one (CLI, notebooks) analytics.alerts judges on an engine of the call."""

    def evaluate(self, *, rule_ids: list[str] | None = None) -> dict[str, Any]: ...

    def set_paused(self, rule: Any, paused: bool) -> None: ...  # rule: analytics.alerts.rules.Rule


@dataclass
class Context:
    settings: Settings
    store: Store
    directory: Directory
    counters: Counters
    pages: PageBoundaries
    prices: PriceTable
    # ids of runs that may carry an annotation (a superset: a stale id costs one lookup), so
    # the detail of the many runs without one skips that query
    annotated: set[str]
    # what is rolled up for trends, mirrored in memory (analytics/history/changes.py)
    rollup_state: RollupState = field(default_factory=RollupState)
    ingest_listeners: list[IngestListener] = field(default_factory=list)
    rules_changed_listeners: list[RulesChangedListener] = field(default_factory=list)
    # registered by a running alert engine (analytics.alerts.lifecycle.Alerts); None without one
    alert_evaluator: AlertEvaluator | None = None
    # set when the server is told to stop (SIGTERM), before it gives requests in flight their
    # last seconds: a long batch stores no further chunk, so it is answered in time
    stopping: threading.Event = field(default_factory=threading.Event)

    def notify_ingest(self, flow_ids: set[str]) -> None:
        for listener in list(self.ingest_listeners):
            try:
                listener(flow_ids)
            except Exception:  # a listener's bug must not fail an acknowledged write
                log.exception("ingest listener %r failed", listener)

    def notify_rules_changed(self) -> None:
        for listener in list(self.rules_changed_listeners):
            try:
                listener()
            except Exception:  # the change is committed; a stale watch is fixed by the next pass
                log.exception("rules-changed listener %r failed", listener)

    def write_registry(self, fn: Callable[[Connection], Any]) -> Any:
        """A write to users, groups, keys or flows; the directory reloads after it commits."""
        return self.store.write(fn, after_commit=lambda _: self.directory.reload(self.store))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_context(
    settings: Settings | None = None, *, migrate: bool = True, read_only: bool = False
) -> Context:
    """Open the store (raises StoreLocked if a server holds it) and bring it to head.

    `read_only` (notebooks) neither migrates nor writes: the store must already be at head.
    """
    settings = settings or Settings()
    store = Store(
        settings.db_path,
        checkpoint_threshold=settings.checkpoint_threshold,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
        read_only=read_only,
        reserve_bytes=int(settings.disk_reserve),
        ours_only=True,
    )
    try:
        if migrate and not read_only:
            migrations.upgrade(store)
        at_head = store.read(migrations.version) >= migrations.head()
        if read_only and not at_head:
            raise InvalidInput(
                f"{settings.db_path} is not at schema version {migrations.head()}; upgrade it first"
            )
        directory = Directory()
        counters = Counters()
        prices = PriceTable()
        annotated: set[str] = set()
        if at_head:
            directory.reload(store)
            store.read(counters.load)
            empty = not store.read(lambda c: c.execute("SELECT 1 FROM prices").fetchall())
            if settings.seed_prices and empty and not read_only:
                store.write(lambda c: replace_prices(c, shipped_prices()))
            store.read(prices.load)
            annotated.update(
                r[0]
                for r in store.read(
                    lambda c: c.execute("SELECT execution_id::VARCHAR FROM execution_annotations").fetchall()
                )
            )
    except BaseException:
        store.close()
        raise
    ctx = Context(settings, store, directory, counters, PageBoundaries(), prices, annotated)
    if at_head:
        store.read(ctx.rollup_state.load)
    return ctx
