"""The measured value of every (rule, flow) target, in one scan per window and level.

Rules are grouped by window; per window, one query over the runs answers every run-level
rule and one over their node runs every node-level rule (a node or a model in scope). Each
query computes every metric at once per scope key, with one GROUPING SET per scope shape in
use ((flow), (flow, version), (flow, node), (flow, model), (flow, version, node), ...), so
1,000 rules over three windows cost at most six scans, not 1,000 queries. The percentile is
only computed when a rule of that window and level asks for it: it is the one costly aggregate.

Node runs are read from the runs' `nodes` lists here, not through the `execution_nodes` view:
a node run is judged by the version of the run it belongs to, and the view has no
`flow_version` (a rule narrowed to a version and a node or model failed to bind).

A query that fails does not take the others down: its targets are measured again per scope
shape, then one by one, and only the targets that still fail are left out, their error given
to the caller (`errors`), so one broken rule never stops the evaluation of the rest.

Alerts judge every run of the flow, whoever saved it: they are for the flow's owners.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.alerts.rules import Metric, Rule
from analytics.alerts.state_machine import Measurement
from analytics.core.context import Context
from analytics.core.errors import StoreClosed, StoreLocked
from analytics.core.store import Connection

log = logging.getLogger("flowhistory.alerts")

_DIMS = ("flow_version", "node_id", "model")
_IN_WINDOW = "created_at >= ? AND created_at < ? AND flow_id IN (SELECT unnest(?::VARCHAR[]))"
_SOURCES = {
    # level: (relation with the scope's columns, duration column); both have flow_id,
    # flow_version, status and cost, and hold only the window's runs of the targets' flows
    "run": (
        f"(SELECT flow_id, flow_version, status, execution_time, cost FROM executions WHERE {_IN_WINDOW})",
        "execution_time",
    ),
    # a node run carries its run's flow_version (the execution_nodes view does not)
    "node": (
        "(SELECT flow_id, flow_version, n.node_id AS node_id, n.model AS model, n.status AS status,"
        " n.duration_ms AS duration_ms, n.cost AS cost"
        f" FROM (SELECT flow_id, flow_version, unnest(nodes) AS n FROM executions WHERE {_IN_WINDOW}))",
        "duration_ms",
    ),
}

Key = tuple[str, str]  # (rule id, flow id)
_MAX_ERROR = 500  # characters of a target's error kept for the caller (the log has it whole)


def error_text(exc: BaseException) -> str:
    """What a caller is told of a target's failure: the class and the start of the message."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


@dataclass(frozen=True, slots=True)
class Target:
    """One judgement to make: a rule, for one flow."""

    rule: Rule
    flow_id: str

    @property
    def key(self) -> Key:
        return (self.rule.id, self.flow_id)


def resolve_targets(ctx: Context, rules: Iterable[Rule], flow_ids: set[str] | None = None) -> list[Target]:
    """Each rule's flows that exist: its flow, or every flow its `owned_by` user owns today."""
    owned: dict[str, list[str]] = defaultdict(list)
    for flow in ctx.directory.flows():
        owned[flow.owner_id].append(flow.id)
    targets: list[Target] = []
    for rule in rules:
        if rule.flow_id is not None:
            flows = [rule.flow_id] if ctx.directory.flow(rule.flow_id) is not None else []
        else:
            flows = owned.get(rule.owned_by or "", [])
        targets.extend(Target(rule, f) for f in flows if flow_ids is None or f in flow_ids)
    return targets


def _shape(rule: Rule) -> tuple[str, ...]:
    return tuple(d for d in _DIMS if getattr(rule, d) is not None)


def _scope_key(rule: Rule, flow_id: str) -> tuple[Any, ...]:
    shape = _shape(rule)
    return (shape, flow_id, *(getattr(rule, d) if d in shape else None for d in _DIMS))


def _used(shapes: set[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(d for d in _DIMS if any(d in shape for shape in shapes))


def _query(level: str, shapes: set[tuple[str, ...]], percentile: bool) -> str:
    relation, duration = _SOURCES[level]
    used = _used(shapes)
    sets = ", ".join("(" + ", ".join(("flow_id", *shape)) + ")" for shape in sorted(shapes))
    g = f"grouping({', '.join(used)})" if used else "0"
    dims = ", ".join(d if d in used else f"NULL::VARCHAR AS {d}" for d in _DIMS)
    p95 = f"quantile_cont({duration}, 0.95)" if percentile else "NULL::DOUBLE"
    return f"""
        SELECT {g} AS g, flow_id, {dims},
               count(*) AS runs, count(*) FILTER (WHERE status = 'error') AS errors,
               {p95} AS p95, coalesce(fsum(cost), 0)::DOUBLE AS cost
        FROM {relation} AS scoped
        GROUP BY GROUPING SETS ({sets})
    """


def _grouping_bits(shape: tuple[str, ...], used: tuple[str, ...]) -> int:
    """DuckDB's grouping(): a 1 bit for each listed column NOT grouped, first column highest."""
    return sum(1 << (len(used) - 1 - i) for i, d in enumerate(used) if d not in shape)


def value_of(metric: Metric, runs: int, errors: int, p95: float | None, cost: float) -> float | None:
    match metric:
        case Metric.RUN_COUNT:
            return float(runs)
        case Metric.ERROR_COUNT:
            return float(errors)
        case Metric.FAILURE_RATE:
            return errors / runs if runs else None
        case Metric.P95_DURATION:
            return p95 if runs else None
        case Metric.COST:
            return cost


def _scan(
    ctx: Context, level: str, members: list[Target], start: datetime, now: datetime
) -> dict[Key, Measurement]:
    """One query for these targets (all of one window and level): each target's measurement."""
    shapes = {_shape(t.rule) for t in members}
    percentile = any(t.rule.metric == Metric.P95_DURATION for t in members)
    flows = sorted({t.flow_id for t in members})
    sql = _query(level, shapes, percentile)

    def run(c: Connection) -> Any:
        return c.execute(sql, [start, now, flows]).fetchall()

    by_key: dict[tuple[Any, ...], tuple[int, int, float | None, float]] = {}
    bits = {_grouping_bits(s, _used(shapes)): s for s in shapes}
    for g, flow_id, version, node, model, runs, errors, p95, cost in ctx.store.read(run):
        shape = bits.get(g)
        if shape is None:
            continue
        by_key[(shape, flow_id, version, node, model)] = (runs, errors, p95, cost)
    out: dict[Key, Measurement] = {}
    for t in members:
        runs, errors, p95, cost = by_key.get(_scope_key(t.rule, t.flow_id), (0, 0, None, 0.0))
        out[t.key] = Measurement(value_of(t.rule.metric, runs, errors, p95, cost), runs)
    return out


def _split(members: list[Target]) -> list[list[Target]]:
    """Smaller batches to try when a batch failed: per scope shape, then target by target."""
    by_shape: dict[tuple[str, ...], list[Target]] = defaultdict(list)
    for t in members:
        by_shape[_shape(t.rule)].append(t)
    if len(by_shape) > 1:
        return [by_shape[s] for s in sorted(by_shape)]
    return [[t] for t in members]


def _measure_isolated(
    ctx: Context,
    level: str,
    members: list[Target],
    start: datetime,
    now: datetime,
    out: dict[Key, Measurement],
    errors: dict[Key, str],
) -> None:
    """Measure these targets in one query; when it fails, in smaller batches, so that only the
    targets whose own query fails are left without a value (their error in `errors`)."""
    try:
        out.update(_scan(ctx, level, members, start, now))
        return
    except (StoreClosed, StoreLocked):
        raise  # the store, not a rule: nothing to judge apart
    except Exception as exc:
        if len(members) == 1:
            [t] = members
            log.exception("alert rule %s could not be measured for flow %s", t.rule.id, t.flow_id)
            errors[t.key] = error_text(exc)
            return
        log.warning("alert measurement of %d targets failed (%s); measuring them apart", len(members), exc)
    for batch in _split(members):
        _measure_isolated(ctx, level, batch, start, now, out, errors)


def measure(
    ctx: Context, targets: list[Target], now: datetime, *, errors: dict[Key, str] | None = None
) -> dict[Key, Measurement]:
    """Every target's value over its window ending at `now` (exclusive).

    A target that cannot be measured is left out of the answer: its error goes into `errors`,
    or, without that dict, is raised once every other target has been measured."""
    groups: dict[tuple[int, str], list[Target]] = defaultdict(list)
    for t in targets:
        groups[(t.rule.window, t.rule.level)].append(t)
    out: dict[Key, Measurement] = {}
    failed: dict[Key, str] = {} if errors is None else errors
    for (window, level), members in sorted(groups.items()):
        _measure_isolated(ctx, level, members, now - timedelta(seconds=window), now, out, failed)
    if errors is None and failed:
        key, message = next(iter(failed.items()))
        raise RuntimeError(f"alert rule {key[0]} could not be measured for flow {key[1]}: {message}")
    return out
