"""Generated runs over ~100 days in a few flows, and the retention rules recomputed in plain Python."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.access import users
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import annotations, ingest
from analytics.retention.policies import GLOBAL, Policy
from tests.factories import OWNER, make_execution
from tests.factories import ROOT as ADMIN

NOW = datetime(2026, 6, 1, 12, 0, 0)


@dataclass
class Run:
    id: str
    flow_id: str
    status: str
    created_at: datetime
    has_payload: bool
    annotated: bool = False


def make_flows(ctx: Context, names: list[str]) -> dict[str, str]:
    for uid in ("owner", "other"):
        if ctx.directory.user(uid) is None:
            users.create_user(ctx, uid)
    return {
        n: flows.create_flow(ctx, OWNER, name=n, nodes=[], edges=[], access_control=None).id for n in names
    }


def generate(
    ctx: Context, flow_ids: list[str], n: int, *, seed: int = 7, days: float = 100, pad: int = 0
) -> list[Run]:
    """`n` runs spread over the flows and the last `days` days before NOW, unique times; `pad`
    adds that many bytes of incompressible text to each run's inputs."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    meta: list[tuple[str, str, datetime, bool]] = []
    used: set[datetime] = set()
    for i in range(n):
        fid = rng.choice(flow_ids)
        status = rng.choices(["success", "error", "aborted"], [70, 20, 10])[0]
        while True:
            at = NOW - timedelta(microseconds=rng.randrange(int(days * 86400e6)))
            if at not in used:
                used.add(at)
                break
        bare = rng.random() < 0.05  # a run that never had a payload: nothing to trim
        extra: dict[str, Any] = {"inputs": None, "outputs": None, "node_results": None} if bare else {}
        if pad and not bare:
            extra["inputs"] = {"prompt": "hello", "pad": rng.randbytes(pad // 2).hex()}
        items.append(
            make_execution(
                fid,
                status=status,
                created_at=at.isoformat(),
                user_id=rng.choice(["owner", "other"]),
                execution_time=rng.randrange(10, 5000),
                errors={"global": f"boom {i % 3}"} if status == "error" else None,
                **extra,
            )
        )
        meta.append((fid, status, at, not bare))
    results = ingest.save_executions(ctx, ADMIN, items)
    assert all(r.status == "stored" for r in results), results
    return [Run(r.id or "", fid, st, at, p) for r, (fid, st, at, p) in zip(results, meta, strict=True)]


def annotate(ctx: Context, runs: list[Run], *, seed: int = 3, share: float = 0.05) -> None:
    """Mark a share of runs with a note, tags or a rating (and a few with an empty annotation)."""
    rng = random.Random(seed)
    kinds: list[dict[str, Any]] = [{"note": "keep me"}, {"tags": ["golden"]}, {"rating": -1}]
    for r in runs:
        if rng.random() < share:
            annotations.set_annotation(ctx, OWNER, r.flow_id, r.id, rng.choice(kinds))
            r.annotated = True
        elif rng.random() < 0.01:
            annotations.set_annotation(ctx, OWNER, r.flow_id, r.id, {})  # empty: protects nothing


def expected(runs: list[Run], policies: dict[str, Policy], now: datetime) -> tuple[set[str], set[str]]:
    """(ids to delete, ids to trim), computed without SQL."""
    by_flow: dict[str, list[Run]] = {}
    for r in runs:
        by_flow.setdefault(r.flow_id, []).append(r)
    delete: set[str] = set()
    trim: set[str] = set()
    for fid, flow_runs in by_flow.items():
        pol = policies.get(fid) or policies.get(GLOBAL) or Policy()
        ordered = sorted(flow_runs, key=lambda r: (r.created_at, r.id), reverse=True)
        for rank, r in enumerate(ordered, start=1):
            if r.annotated:
                continue
            limit = pol.max_age_days
            if r.status != "success" and pol.failed_max_age_days is not None:
                limit = pol.failed_max_age_days
            old = limit is not None and r.created_at < now - timedelta(days=limit)
            capped = pol.keep_last is not None and rank > pol.keep_last
            if old or capped:
                delete.add(r.id)
            elif (
                pol.payload_ttl_days is not None
                and r.has_payload
                and r.created_at < now - timedelta(days=pol.payload_ttl_days)
            ):
                trim.add(r.id)
    return delete, trim


def all_rows(ctx: Context) -> dict[str, tuple[Any, ...]]:
    """Every column of every run, by id (JSON as text, nodes as Python lists)."""
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, * EXCLUDE (id, inputs, outputs, node_results, errors, meta, replay_of),"
            " inputs::VARCHAR, outputs::VARCHAR, node_results::VARCHAR, errors::VARCHAR, meta::VARCHAR,"
            " replay_of::VARCHAR FROM executions"
        ).fetchall()
    )
    return {r[0]: tuple(r[1:]) for r in rows}
