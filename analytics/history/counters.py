"""Exact per-(flow, user) execution counters kept in memory, so stats are one snapshot in µs.

The peer computes stats with six queries that are not one snapshot; even one DuckDB query is
~1-30 ms on a big flow. This process owns every write, so counters built once at start and
updated by the writer after each commit are exact: appends add, deletes recompute the flows
they touched from the table. Stats for a flow sum its users' counters (a reader who may not
see every execution gets only their own entry).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from analytics.core.store import Connection, Store

_STATUS_INDEX = {"success": 0, "error": 1, "aborted": 2}


@dataclass(frozen=True, slots=True)
class Stats:
    total_executions: int
    success_count: int
    error_count: int
    aborted_count: int
    avg_execution_time: float
    last_execution_at: datetime | None


class _Cell:
    __slots__ = ("counts", "last", "time_sum")

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.time_sum = 0
        self.last: datetime | None = None

    def add(self, status: str, execution_time: int, created_at: datetime, n: int = 1) -> None:
        self.counts[_STATUS_INDEX[status]] += n
        self.time_sum += execution_time
        if self.last is None or created_at > self.last:
            self.last = created_at


class Counters:
    """Also keeps a version per flow, bumped by every change, for caches of per-flow answers."""

    def __init__(self) -> None:
        self._flows: dict[str, dict[str, _Cell]] = {}
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def version(self, flow_id: str) -> int:
        return self._versions.get(flow_id, 0)

    def _bump(self, flow_ids: Iterable[str]) -> None:
        for fid in flow_ids:
            self._versions[fid] = self._versions.get(fid, 0) + 1

    def load(self, conn: Connection, flow_ids: Iterable[str] | None = None) -> None:
        """(Re)build from the table: all flows, or only those given (after a delete)."""
        sql = (
            "SELECT flow_id, user_id, status, count(*), sum(execution_time), max(created_at) FROM executions"
        )
        params: list[object] = []
        if flow_ids is not None:
            ids = list(set(flow_ids))
            if not ids:
                return
            sql += " WHERE flow_id IN (SELECT unnest(?::VARCHAR[]))"
            params.append(ids)
        rows = conn.execute(sql + " GROUP BY ALL", params).fetchall()
        fresh: dict[str, dict[str, _Cell]] = {}
        for flow_id, user_id, status, n, time_sum, last in rows:
            cell = fresh.setdefault(flow_id, {}).setdefault(user_id, _Cell())
            cell.add(status, int(time_sum), last, n)
        with self._lock:
            self._bump(fresh if flow_ids is None else set(flow_ids))
            if flow_ids is None:
                self._flows = fresh
            else:
                for fid in set(flow_ids):
                    if fid in fresh:
                        self._flows[fid] = fresh[fid]
                    else:
                        self._flows.pop(fid, None)

    def reload_flows(self, store: Store, flow_ids: Iterable[str]) -> None:
        ids = list(flow_ids)
        store.read(lambda c: self.load(c, ids))

    def add(
        self,
        flow_ids: list[str],
        user_ids: list[str],
        statuses: list[str],
        times: list[int],
        created: list[datetime],
    ) -> None:
        with self._lock:
            self._bump(set(flow_ids))
            for fid, uid, status, t, at in zip(flow_ids, user_ids, statuses, times, created, strict=True):
                self._flows.setdefault(fid, {}).setdefault(uid, _Cell()).add(status, t, at)

    def stats(self, flow_id: str, *, only_user: str | None = None) -> Stats:
        counts = [0, 0, 0]
        time_sum = 0
        last: datetime | None = None
        with self._lock:
            cells = self._flows.get(flow_id, {})
            if only_user is None:
                chosen = list(cells.values())
            else:
                chosen = [cells[only_user]] if only_user in cells else []
            for cell in chosen:
                for i in range(3):
                    counts[i] += cell.counts[i]
                time_sum += cell.time_sum
                if cell.last is not None and (last is None or cell.last > last):
                    last = cell.last
        total = sum(counts)
        # whole milliseconds: the panel prints "N ms" and a rounded average reads better
        avg = float(round(time_sum / total)) if total else 0.0
        return Stats(total, counts[0], counts[1], counts[2], avg, last)
