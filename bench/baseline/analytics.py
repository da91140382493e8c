"""What the peer would add for issue 3's analytics, written the straightforward Open WebUI way:
SQLAlchemy ORM queries on `flow_execution` (the peer's three indexes, nothing added) and the
arithmetic in Python. Not measured as a strawman: each query reads only the columns it needs.

- trend: the flow's runs in [start, end) (execution_time, created_at, status), grouped per UTC
  day in Python; p50/p95 by linear interpolation between closest ranks (`statistics.quantiles`,
  method="inclusive": the same definition as DuckDB's `quantile_cont`), empty days as zeros.
- node breakdown: the peer stores no per-node facts, so it loads `node_results` and `errors`
  of every run of the flow (SQLAlchemy's JSON type parses them) and counts per node: runs, runs
  where the node is named in `errors`, and p50/p95 of a `duration_ms` where the node reports one.
- search: the filters as WHERE clauses, ORDER BY created_at DESC LIMIT n, and a count(*) with
  the same filters; summaries only (no payloads), like flowhistory's default.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func

from bench.baseline.db import get_db
from bench.baseline.models import FlowExecution

DAY = 86400


def percentiles(values: list[float], qs: tuple[float, ...]) -> list[float]:
    """Linear interpolation between closest ranks (`quantile_cont`); zeros for no values."""
    if not values:
        return [0.0 for _ in qs]
    if len(values) == 1:
        return [float(values[0]) for _ in qs]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # cuts[k-1] is the k-th percentile
    return [float(cuts[round(q * 100) - 1]) for q in qs]


class SearchForm(BaseModel):
    flow_id: str | None = None
    status: list[str] | None = None
    created_after: int | None = None  # epoch seconds, inclusive
    created_before: int | None = None  # epoch seconds, exclusive
    min_execution_time: int | None = None  # ms, inclusive
    limit: int = 50


class FlowAnalyticsTable:
    def get_daily_trend(self, flow_id: str, start: int, end: int) -> list[dict[str, Any]]:
        with get_db() as db:
            runs = (
                db.query(FlowExecution.execution_time, FlowExecution.created_at, FlowExecution.status)
                .filter(
                    FlowExecution.flow_id == flow_id,
                    FlowExecution.created_at >= start,
                    FlowExecution.created_at < end,
                )
                .all()
            )
        first = start - start % DAY
        days: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for execution_time, created_at, status in runs:
            days[created_at - created_at % DAY].append((execution_time, status))
        out = []
        for day in range(first, end, DAY):
            items = days.get(day, [])
            times = [t for t, _ in items]
            errors = sum(1 for _, s in items if s == "error")
            p50, p95 = percentiles(times, (0.5, 0.95))
            out.append(
                {
                    "bucket": day,
                    "runs": len(items),
                    "failure_rate": errors / len(items) if items else 0.0,
                    "p50_duration": p50,
                    "p95_duration": p95,
                }
            )
        return out

    def get_node_breakdown(self, flow_id: str) -> list[dict[str, Any]]:
        with get_db() as db:
            runs = (
                db.query(FlowExecution.node_results, FlowExecution.errors)
                .filter(FlowExecution.flow_id == flow_id)
                .all()
            )
        counts: dict[str, int] = defaultdict(int)
        errors: dict[str, int] = defaultdict(int)
        durations: dict[str, list[int]] = defaultdict(list)
        for node_results, run_errors in runs:
            run_errors = run_errors or {}
            for node_id, result in (node_results or {}).items():
                counts[node_id] += 1
                if node_id in run_errors:
                    errors[node_id] += 1
                if isinstance(result, dict) and isinstance(result.get("duration_ms"), int):
                    durations[node_id].append(result["duration_ms"])
            for node_id in run_errors:
                if node_id != "global" and node_id not in (node_results or {}):
                    counts[node_id] += 1
                    errors[node_id] += 1
        out = []
        for node_id, n in counts.items():
            p50, p95 = percentiles(durations[node_id], (0.5, 0.95))
            out.append(
                {
                    "node_id": node_id,
                    "runs": n,
                    "errors": errors[node_id],
                    "failure_rate": errors[node_id] / n,
                    "timed_runs": len(durations[node_id]),
                    "p50_ms": p50 if durations[node_id] else None,
                    "p95_ms": p95 if durations[node_id] else None,
                }
            )
        out.sort(key=lambda r: (-r["runs"], r["node_id"]))
        return out

    def search_executions(self, form: SearchForm, flow_ids: list[str] | None) -> dict[str, Any]:
        """`flow_ids`: the flows the caller may read, None for all (admin)."""
        with get_db() as db:
            query = db.query(
                FlowExecution.id,
                FlowExecution.flow_id,
                FlowExecution.user_id,
                FlowExecution.status,
                FlowExecution.execution_time,
                FlowExecution.created_at,
            )
            if flow_ids is not None:
                query = query.filter(FlowExecution.flow_id.in_(flow_ids))
            if form.flow_id is not None:
                query = query.filter(FlowExecution.flow_id == form.flow_id)
            if form.status:
                query = query.filter(FlowExecution.status.in_(form.status))
            if form.created_after is not None:
                query = query.filter(FlowExecution.created_at >= form.created_after)
            if form.created_before is not None:
                query = query.filter(FlowExecution.created_at < form.created_before)
            if form.min_execution_time is not None:
                query = query.filter(FlowExecution.execution_time >= form.min_execution_time)
            total = query.with_entities(func.count(FlowExecution.id)).scalar()
            rows = query.order_by(FlowExecution.created_at.desc()).limit(form.limit).all()
            return {"items": [dict(r._mapping) for r in rows], "total": total}


FlowAnalytics = FlowAnalyticsTable()
