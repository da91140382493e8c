"""The measured value of every (rule, flow) target, in one scan per window and level.

Rules are grouped by window; per window, one query over `executions` answers every run-level
rule and one over `execution_nodes` every node-level rule (a node or a model in scope). Each
query computes every metric at once per scope key, with one GROUPING SET per scope shape in
use ((flow), (flow, version), (flow, node), (flow, model), ...), so 1,000 rules over three
windows cost at most six scans, not 1,000 queries. The percentile is only computed when a rule
of that window and level asks for it: it is the one costly aggregate.

Alerts judge every run of the flow, whoever saved it: they are for the flow's owners.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.alerts.rules import Metric, Rule
from analytics.alerts.state_machine import Measurement
from analytics.core.context import Context
from analytics.core.store import Connection

_DIMS = ("flow_version", "node_id", "model")
_SOURCES = {
    # level: (relation, duration column, error test, cost column)
    "run": ("executions", "execution_time", "status = 'error'", "cost"),
    "node": ("execution_nodes", "duration_ms", "status = 'error'", "cost"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """One judgement to make: a rule, for one flow."""

    rule: Rule
    flow_id: str

    @property
    def key(self) -> tuple[str, str]:
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
    relation, duration, error, cost = _SOURCES[level]
    used = _used(shapes)
    sets = ", ".join("(" + ", ".join(("flow_id", *shape)) + ")" for shape in sorted(shapes))
    g = f"grouping({', '.join(used)})" if used else "0"
    dims = ", ".join(d if d in used else f"NULL::VARCHAR AS {d}" for d in _DIMS)
    p95 = f"quantile_cont({duration}, 0.95)" if percentile else "NULL::DOUBLE"
    return f"""
        SELECT {g} AS g, flow_id, {dims},
               count(*) AS runs, count(*) FILTER (WHERE {error}) AS errors,
               {p95} AS p95, coalesce(sum({cost}), 0)::DOUBLE AS cost
        FROM {relation}
        WHERE created_at >= ? AND created_at < ? AND flow_id IN (SELECT unnest(?::VARCHAR[]))
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


def measure(ctx: Context, targets: list[Target], now: datetime) -> dict[tuple[str, str], Measurement]:
    """Every target's value over its window ending at `now` (exclusive)."""
    groups: dict[tuple[int, str], list[Target]] = defaultdict(list)
    for t in targets:
        groups[(t.rule.window, t.rule.level)].append(t)
    out: dict[tuple[str, str], Measurement] = {}
    for (window, level), members in sorted(groups.items()):
        shapes = {_shape(t.rule) for t in members}
        percentile = any(t.rule.metric == Metric.P95_DURATION for t in members)
        flows = sorted({t.flow_id for t in members})
        sql = _query(level, shapes, percentile)
        start = now - timedelta(seconds=window)

        def run(c: Connection, sql: str = sql, start: datetime = start, flows: list[str] = flows) -> Any:
            return c.execute(sql, [start, now, flows]).fetchall()

        by_key: dict[tuple[Any, ...], tuple[int, int, float | None, float]] = {}
        bits = {_grouping_bits(s, _used(shapes)): s for s in shapes}
        for g, flow_id, version, node, model, runs, errors, p95, cost in ctx.store.read(run):
            shape = bits.get(g)
            if shape is None:
                continue
            by_key[(shape, flow_id, version, node, model)] = (runs, errors, p95, cost)
        for t in members:
            runs, errors, p95, cost = by_key.get(_scope_key(t.rule, t.flow_id), (0, 0, None, 0.0))
            out[t.key] = Measurement(value_of(t.rule.metric, runs, errors, p95, cost), runs)
    return out
