"""Builders for alert tests: a store with owners and flows, runs at chosen times, stored rules."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.alerts import service
from analytics.alerts.rules import Rule, RuleCreate
from analytics.alerts.webhooks import Notification
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import ADMIN, OTHER, OWNER, SECRET
from tests.smtp_server import SMTP_PASSWORD, SMTP_USER

MODELS = ("model-a", "model-b")


def quantile_cont(xs: list[float], q: float) -> float | None:
    """The reference percentile: linear interpolation between closest ranks, DuckDB's quantile_cont."""
    if not xs:
        return None
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def metric_value(
    metric: str, runs: int, errors: int, durations: list[float], costs: list[float]
) -> float | None:
    """A rule metric's reference value from what it counts (runs or node runs), as docs/alerts.md
    defines it: p95 is quantile_cont of the durations, cost the sum."""
    match metric:
        case "run_count":
            return float(runs)
        case "error_count":
            return float(errors)
        case "failure_rate":
            return errors / runs if runs else None
        case "p95_duration":
            return quantile_cont(durations, 0.95)
        case _:
            return sum(costs)


def channel_settings(tmp_path: Path, smtp_port: int, **more: Any) -> Settings:
    """A store whose alert channels reach the tests' own receivers on 127.0.0.1: the webhook
    receiver and the SMTP server on `smtp_port`."""
    return Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        alert_webhook_allow=["127.0.0.1"],
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        **more,
    )


def hour_ago_base() -> datetime:
    """A whole hour a day back: runs stay in the past of the real clock, as ingest requires."""
    now = ingest.utc_now().replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=1)


@dataclass
class Run:
    flow_id: str
    created_at: datetime
    status: str
    execution_time: int
    flow_version: str
    node_id: str
    model: str
    node_status: str
    node_ms: int
    id: str = ""
    cost: float | None = None


@dataclass
class Setup:
    ctx: Context
    flows: dict[str, str]  # label -> flow id
    runs: list[Run] = field(default_factory=list)


def setup_flows(ctx: Context) -> Setup:
    for uid, role in (("admin", "admin"), ("owner", "user"), ("other", "user"), ("reader", "user")):
        users.create_user(ctx, uid, role=role)
    made = {
        "a": flows.create_flow(ctx, OWNER, name="a", nodes=[{"id": "llm_1"}], edges=[], access_control=None),
        "b": flows.create_flow(ctx, OWNER, name="b", nodes=[], edges=[], access_control={}),
        "c": flows.create_flow(ctx, OTHER, name="c", nodes=[], edges=[], access_control=None),
    }
    return Setup(ctx, {k: f.id for k, f in made.items()})


def body(r: Run) -> dict[str, Any]:
    llm = {
        "model": r.model,
        "duration_ms": r.node_ms,
        "status": r.node_status,
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500},
    }
    return {
        "flow_id": r.flow_id,
        "status": r.status,
        "execution_time": r.execution_time,
        "created_at": r.created_at.isoformat(),
        "user_id": "owner",
        "inputs": {"prompt": "hi"},
        "node_results": {"input_1": {"value": "hi"}, r.node_id: llm},
        "outputs": None,
        "errors": {r.node_id: "boom"} if r.node_status == "error" else None,
    }


def save(ctx: Context, runs: list[Run]) -> None:
    results = ingest.save_executions(ctx, ADMIN, [body(r) for r in runs])
    assert all(x.status == "stored" for x in results), results
    ids = [x.id for x in results]
    for r, i in zip(runs, ids, strict=True):
        r.id = i or ""
    costs = dict(
        ctx.store.read(
            lambda c: c.execute(
                "SELECT id::VARCHAR, cost FROM executions WHERE id::VARCHAR IN (SELECT unnest(?::VARCHAR[]))",
                [ids],
            ).fetchall()
        )
    )
    for r in runs:
        r.cost = costs[r.id]


def generate(s: Setup, start: datetime, n: int, *, seed: int = 7, span_s: int = 3 * 3600) -> list[Run]:
    """n runs spread over [start, start + span) across flows a, b, c; flow a changes version half way."""
    rng = random.Random(seed)
    versions = {label: s.ctx.directory.flow(fid).version for label, fid in s.flows.items()}  # type: ignore[union-attr]
    first, second = [], []
    for i in range(n):
        label = rng.choice("aabc")
        status = rng.choices(["success", "error", "aborted"], [0.7, 0.25, 0.05])[0]
        node_status = "error" if status == "error" and rng.random() < 0.8 else "success"
        run = Run(
            s.flows[label],
            start + timedelta(seconds=rng.uniform(0, span_s)),
            status,
            rng.randint(10, 5000),
            versions[label],
            rng.choice(["llm_1", "llm_2"]),
            rng.choice(MODELS),
            node_status,
            rng.randint(5, 900),
        )
        (first if i < n // 2 else second).append(run)
    save(s.ctx, first)
    flows.update_flow(s.ctx, OWNER, s.flows["a"], {"nodes": [{"id": "llm_1"}, {"id": "llm_2"}]})
    new_version = s.ctx.directory.flow(s.flows["a"]).version  # type: ignore[union-attr]
    for r in second:
        if r.flow_id == s.flows["a"]:
            r.flow_version = new_version
    save(s.ctx, second)
    s.runs.extend(first + second)
    return first + second


def make_rule(ctx: Context, viewer: Viewer = OWNER, **fields: Any) -> Rule:
    data: dict[str, Any] = {"name": "rule", "metric": "failure_rate", "window": "1h", "threshold": 0.5}
    data.update(fields)
    return service.create_rule(ctx, viewer, RuleCreate(**data))


class Collect:
    """A dispatcher that keeps what it is handed (by either entry point) and sends nothing."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def enqueue(self, notifications: list[Notification]) -> None:
        self.sent.extend(notifications)

    def push(self, notifications: list[Notification]) -> None:
        self.sent.extend(notifications)
