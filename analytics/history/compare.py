"""Compare executions side by side: nodes aligned by id, with a structural diff of each result.

Why aligned by node id: the editor names nodes once (`model_1739905519876_k3j9x2abq`) and keeps
the name across edits, so the same id in two runs is the same step even when the graph changed.
The union of the runs' node ids is shown; a node missing from a run is `present: false`.

Each node's result (`node_results[node_id]`) is diffed against the first run's: added, removed
and changed JSON Pointer paths (RFC 6901) with old and new values. Lists are compared by
position (no LCS: a list that gained an item at the front shows every later index as changed).
The diff is bounded so one huge payload cannot blow up the answer: at most `MAX_CHANGES` paths
per node and run, and below `MAX_DEPTH` levels a differing subtree is one `changed` path; either
cut sets `truncated`. Numbers compare by value (1 == 1.0) but a boolean is never a number.

A node "differs" when its presence, status or result differs between runs. Duration, tokens and
cost are shown per run but do not count: they vary on every run and would put every node first.
Differing nodes come first, then the rest; each group in the first run's node order, then nodes
only later runs have, in their order.

Runs of different flows may be compared (a flow and its duplicate, say) as long as the caller may
see every one of them; a run the caller may not see is "Execution not found", exactly like one
that does not exist, so compare never tells that another user's run exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from analytics.access.permissions import Viewer, grant_for
from analytics.core.context import Context
from analytics.core.errors import InvalidInput, NotFound
from analytics.history.runs import EXECUTION_NOT_FOUND, ROW_COLUMNS, ExecutionRow

MIN_RUNS = 2
MAX_RUNS = 10
MAX_DEPTH = 20
MAX_CHANGES = 100

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # JSON Pointer into the node's result; "" is the whole result
    kind: ChangeKind
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True)
class Diff:
    changes: tuple[Change, ...]
    truncated: bool = False

    @property
    def empty(self) -> bool:
        return not self.changes and not self.truncated


@dataclass(frozen=True, slots=True)
class NodeRun:
    """One node in one run; `diff` is against the first run's result (None for the first run)."""

    present: bool
    status: str | None = None
    model: str | None = None
    duration_ms: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_estimated: bool = False
    cost: float | None = None
    error: str | None = None
    diff: Diff | None = None


@dataclass(frozen=True, slots=True)
class NodeComparison:
    node_id: str
    differs: bool
    runs: tuple[NodeRun, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    executions: tuple[ExecutionRow, ...]
    nodes: tuple[NodeComparison, ...]
    max_depth: int = MAX_DEPTH
    max_changes: int = MAX_CHANGES


# -- the diff ---------------------------------------------------------------------------------


def _pointer(path: str, key: str | int) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _same_leaf(a: Any, b: Any) -> bool:
    """JSON equality of scalars: 1 == 1.0, but True is not 1 (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _same(a: Any, b: Any) -> bool:
    """JSON equality, with a stack instead of recursion: payloads may nest hundreds deep."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif not _same_leaf(x, y):
            return False
    return True


class _Collector:
    def __init__(self, limit: int) -> None:
        self.changes: list[Change] = []
        self.limit = limit
        self.truncated = False

    def add(self, change: Change) -> bool:
        """False once the cap is reached: the walk stops there."""
        if len(self.changes) >= self.limit:
            self.truncated = True
            return False
        self.changes.append(change)
        return True


def _walk(old: Any, new: Any, path: str, depth: int, out: _Collector, max_depth: int) -> bool:
    """Recurses at most `max_depth` deep; False once the change cap stopped the walk."""
    both_dicts = isinstance(old, dict) and isinstance(new, dict)
    both_lists = isinstance(old, list) and isinstance(new, list)
    if not (both_dicts or both_lists):
        return True if _same_leaf(old, new) else out.add(Change(path, "changed", old, new))
    if depth >= max_depth:
        if _same(old, new):
            return True
        out.truncated = True
        return out.add(Change(path, "changed", old, new))
    if both_dicts:
        for key, value in old.items():
            here = _pointer(path, key)
            if key not in new:
                ok = out.add(Change(here, "removed", old=value))
            else:
                ok = _walk(value, new[key], here, depth + 1, out, max_depth)
            if not ok:
                return False
        for key, value in new.items():
            if key not in old and not out.add(Change(_pointer(path, key), "added", new=value)):
                return False
        return True
    for i in range(max(len(old), len(new))):
        here = _pointer(path, i)
        if i >= len(new):
            ok = out.add(Change(here, "removed", old=old[i]))
        elif i >= len(old):
            ok = out.add(Change(here, "added", new=new[i]))
        else:
            ok = _walk(old[i], new[i], here, depth + 1, out, max_depth)
        if not ok:
            return False
    return True


def diff_json(old: Any, new: Any, *, max_depth: int = MAX_DEPTH, max_changes: int = MAX_CHANGES) -> Diff:
    """Paths where `new` differs from `old`, in `old`'s key order, then keys only `new` has."""
    out = _Collector(max_changes)
    _walk(old, new, "", 0, out, max_depth)
    return Diff(tuple(out.changes), out.truncated)


# -- loading and aligning ---------------------------------------------------------------------

_COLUMNS = f"{ROW_COLUMNS}, node_results, nodes"


@dataclass(frozen=True, slots=True)
class _Loaded:
    execution: ExecutionRow
    results: dict[str, Any]
    nodes: list[dict[str, Any]]


def _check_ids(ids: list[str]) -> list[str]:
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise InvalidInput(f"compare takes {MIN_RUNS} to {MAX_RUNS} execution ids", field="ids")
    normal: list[str] = []
    for raw in ids:
        try:
            normal.append(str(uuid.UUID(str(raw))))
        except ValueError:
            raise NotFound(EXECUTION_NOT_FOUND) from None
    if len(set(normal)) != len(normal):
        raise InvalidInput("each execution may appear once", field="ids")
    return normal


def _load(ctx: Context, viewer: Viewer, ids: list[str]) -> list[_Loaded]:
    """Rows in the order asked; any missing or invisible run is NotFound, whichever it was."""
    rows = ctx.store.read(
        lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM executions WHERE id IN (SELECT unnest(?::UUID[]))", [ids]
        ).fetchall()
    )
    by_id = {r[0]: r for r in rows}
    loaded = []
    for exec_id in ids:
        row = by_id.get(exec_id)
        flow = ctx.directory.flow(row[1]) if row is not None else None
        if row is None or flow is None:
            raise NotFound(EXECUTION_NOT_FOUND)
        grant = grant_for(ctx.directory, viewer, flow)
        if not grant.read or (grant.only_user is not None and row[2] != grant.only_user):
            raise NotFound(EXECUTION_NOT_FOUND)
        *summary, node_results, nodes = row
        results = orjson.loads(node_results) if node_results is not None else None
        loaded.append(
            _Loaded(ExecutionRow(*summary), results if isinstance(results, dict) else {}, nodes or [])
        )
    return loaded


def _node_run(run: _Loaded, node_id: str, facts: dict[str, Any] | None, base: _Loaded | None) -> NodeRun:
    present = facts is not None or node_id in run.results
    diff = None
    if base is not None:
        in_base = node_id in base.results
        in_run = node_id in run.results
        if in_base and in_run:
            diff = diff_json(base.results[node_id], run.results[node_id])
        elif in_base:
            diff = Diff((Change("", "removed", old=base.results[node_id]),))
        elif in_run:
            diff = Diff((Change("", "added", new=run.results[node_id]),))
        else:
            diff = Diff(())
    if facts is None:
        return NodeRun(present=present, diff=diff)
    return NodeRun(
        present=True,
        status=facts["status"],
        model=facts["model"],
        duration_ms=facts["duration_ms"],
        tokens_in=facts["tokens_in"],
        tokens_out=facts["tokens_out"],
        tokens_estimated=bool(facts["tokens_estimated"]),
        cost=facts["cost"],
        error=facts["error"],
        diff=diff,
    )


def _align(runs: list[_Loaded]) -> list[NodeComparison]:
    order: dict[str, None] = {}
    facts: list[dict[str, dict[str, Any]]] = []
    for run in runs:
        by_node = {n["node_id"]: n for n in run.nodes}
        facts.append(by_node)
        order.update(dict.fromkeys(by_node))
        order.update(dict.fromkeys(run.results))
    compared = []
    for node_id in order:
        cells = tuple(
            _node_run(run, node_id, facts[i].get(node_id), None if i == 0 else runs[0])
            for i, run in enumerate(runs)
        )
        differs = (
            len({c.present for c in cells}) > 1
            or len({c.status for c in cells}) > 1
            or any(c.diff is not None and not c.diff.empty for c in cells)
        )
        compared.append(NodeComparison(node_id, differs, cells))
    return sorted(compared, key=lambda n: not n.differs)  # stable: each group keeps its order


def compare_executions(ctx: Context, viewer: Viewer, ids: list[str]) -> Comparison:
    """Compare 2-10 runs the caller may see; the first is the baseline every diff is against."""
    runs = _load(ctx, viewer, _check_ids(ids))
    return Comparison(tuple(r.execution for r in runs), tuple(_align(runs)))
