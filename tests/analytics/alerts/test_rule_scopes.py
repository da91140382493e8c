"""Every shape of rule scope against plain Python: metric x flow / owned_by x flow_version x
node_id x model, each rule alone and all of them in one pass.

A rule narrowed to a flow version AND a node or a model counts the node runs of that version's
runs; the `execution_nodes` view has no flow_version, and evaluating such a rule used to fail
with a Binder Error (and with it every rule of its window: the scheduled pass for everyone).

The reference reads the stored facts (each run's status, duration, version, cost and its
`nodes` list, as ingest wrote them) and computes every metric in Python, per docs/alerts.md:
failure_rate = error runs / runs (aborted runs are runs, not failures), error_count, run_count,
p95_duration (quantile_cont of execution_time, or of the nodes' duration_ms for node scopes),
cost (sum; the nodes' costs for node scopes).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.access import users
from analytics.alerts import repository as repo
from analytics.alerts.engine import AlertEngine
from analytics.alerts.evaluate import Target, measure, resolve_targets
from analytics.alerts.rules import Rule
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import ADMIN, OTHER, OWNER, SECRET
from tests.factories.alerts import hour_ago_base, make_rule, metric_value

METRICS = ("failure_rate", "error_count", "run_count", "p95_duration", "cost")
LLM_NODES = ("llm_1", "llm_2")
MODELS = ("gpt-4o-mini", "gpt-4o", "model-x")  # two priced (node and run costs), one not
SPAN = timedelta(hours=3)
WINDOW = "1h"


@dataclass(frozen=True)
class NodeRow:
    node_id: str
    model: str | None
    status: str | None
    duration_ms: int | None
    cost: float | None


@dataclass(frozen=True)
class RunRow:
    flow_id: str
    created_at: datetime
    status: str
    execution_time: int
    flow_version: str | None
    cost: float | None
    nodes: tuple[NodeRow, ...]


@dataclass
class Data:
    ctx: Context
    flows: dict[str, str]  # label -> flow id
    versions: dict[str, str]  # "old" / "new" (flow a) -> version
    start: datetime
    rows: list[RunRow]


def _body(rng: random.Random, flow_id: str, at: datetime) -> dict[str, Any]:
    status = rng.choices(["success", "error", "aborted"], [0.65, 0.28, 0.07])[0]
    results: dict[str, Any] = {"input_1": {"value": "hi"}}
    errors: dict[str, str] = {}
    for node in rng.sample(LLM_NODES, rng.randint(1, 2)):
        results[node] = {
            "model": rng.choice(MODELS),
            "duration_ms": rng.randint(5, 900),
            "status": "success",
            "usage": {"prompt_tokens": rng.randint(100, 5000), "completion_tokens": rng.randint(10, 900)},
        }
        if status == "error" and rng.random() < 0.6:
            errors[node] = "boom"
    return {
        "flow_id": flow_id,
        "status": status,
        "execution_time": rng.randint(10, 5000),
        "created_at": at.isoformat(),
        "user_id": "owner",
        "inputs": {"prompt": "hi"},
        "node_results": results,
        "outputs": None,
        "errors": errors or None,
    }


def _stored(ctx: Context) -> list[RunRow]:
    """The facts the metrics are computed from, read back as ingest stored them."""
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT flow_id, created_at, status, execution_time, flow_version, cost, nodes FROM executions"
        ).fetchall()
    )
    return [
        RunRow(
            f,
            at,
            status,
            ms,
            version,
            cost,
            tuple(NodeRow(n["node_id"], n["model"], n["status"], n["duration_ms"], n["cost"]) for n in nodes),
        )
        for f, at, status, ms, version, cost, nodes in rows
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    """Runs of flows a, b (owner) and c (other) over three hours; flow a changes version half way."""
    path: Path = tmp_path_factory.mktemp("scopes") / "store.duckdb"
    settings = Settings(db_path=path, webui_secret_key=SECRET, port=0, alert_webhook_allow=["127.0.0.1"])
    with open_context(settings) as ctx:
        for uid, role in (("admin", "admin"), ("owner", "user"), ("other", "user")):
            users.create_user(ctx, uid, role=role)
        made = {
            "a": flows.create_flow(
                ctx, OWNER, name="a", nodes=[{"id": "llm_1"}], edges=[], access_control=None
            ),
            "b": flows.create_flow(ctx, OWNER, name="b", nodes=[], edges=[], access_control=None),
            "c": flows.create_flow(ctx, OTHER, name="c", nodes=[], edges=[], access_control=None),
        }
        ids = {k: f.id for k, f in made.items()}
        old = ctx.directory.flow(ids["a"]).version  # type: ignore[union-attr]
        rng = random.Random(11)
        start = hour_ago_base()
        times = sorted(start + timedelta(seconds=rng.uniform(0, SPAN.total_seconds())) for _ in range(900))
        half = len(times) // 2
        new = ""
        for part in (times[:half], times[half:]):
            bodies = [_body(rng, ids[rng.choice("aabc")], at) for at in part]
            assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, bodies))
            if not new:
                new = flows.update_flow(
                    ctx, OWNER, ids["a"], {"nodes": [{"id": "llm_1"}, {"id": "llm_2"}]}
                ).version
        rows = _stored(ctx)
        # the data is what the cases need: both versions of a, node errors, priced nodes
        assert old != new and {r.flow_version for r in rows if r.flow_id == ids["a"]} == {old, new}
        assert sum(n.status == "error" for r in rows for n in r.nodes) > 50
        assert sum((n.cost or 0) > 0 for r in rows for n in r.nodes) > 100
        yield Data(ctx, ids, {"old": old, "new": new}, start, rows)


# -- the reference -----------------------------------------------------------------------------


def expected(rule: Rule, flow_id: str, rows: list[RunRow], now: datetime) -> tuple[float | None, int]:
    """(value, runs) of the rule for one flow over [now - window, now)."""
    start = now - timedelta(seconds=rule.window)
    runs = [r for r in rows if r.flow_id == flow_id and start <= r.created_at < now]
    if rule.flow_version is not None:
        runs = [r for r in runs if r.flow_version == rule.flow_version]
    # (status, duration, cost) of each counted run, or of each counted node run of those runs
    facts: list[tuple[str | None, float | None, float | None]]
    if rule.node_id is None and rule.model is None:
        facts = [(r.status, float(r.execution_time), r.cost) for r in runs]
    else:
        facts = [
            (n.status, None if n.duration_ms is None else float(n.duration_ms), n.cost)
            for r in runs
            for n in r.nodes
            if (rule.node_id is None or n.node_id == rule.node_id)
            and (rule.model is None or n.model == rule.model)
        ]
    n = len(facts)
    errors = sum(status == "error" for status, _, _ in facts)
    durations = [d for _, d, _ in facts if d is not None]
    costs = [c for _, _, c in facts if c is not None]
    return metric_value(rule.metric.value, n, errors, durations, costs), n


# -- the cases -----------------------------------------------------------------------------------

# (label, scope fields); "old"/"new" stand for flow a's versions, "a"/"c" for flows
SCOPES: list[tuple[str, dict[str, str]]] = [
    ("flow", {"flow_id": "a"}),
    ("flow+version", {"flow_id": "a", "flow_version": "old"}),
    ("flow+node", {"flow_id": "a", "node_id": "llm_1"}),
    ("flow+model", {"flow_id": "a", "model": "gpt-4o-mini"}),
    ("flow+node+model", {"flow_id": "a", "node_id": "llm_2", "model": "gpt-4o"}),
    ("flow+version+node", {"flow_id": "a", "flow_version": "new", "node_id": "llm_1"}),
    ("flow+version+model", {"flow_id": "a", "flow_version": "old", "model": "gpt-4o-mini"}),
    (
        "flow+version+node+model",
        {"flow_id": "a", "flow_version": "new", "node_id": "llm_2", "model": "gpt-4o"},
    ),
    ("flow+version+unpriced-model", {"flow_id": "a", "flow_version": "new", "model": "model-x"}),
    ("flow+version+no-such-node", {"flow_id": "a", "flow_version": "old", "node_id": "nowhere"}),
    ("other-flow+version+node", {"flow_id": "c", "flow_version": "c", "node_id": "llm_2"}),
    ("owned_by", {"owned_by": "owner"}),
    ("owned_by+node", {"owned_by": "owner", "node_id": "llm_1"}),
    ("owned_by+model", {"owned_by": "owner", "model": "gpt-4o"}),
    ("owned_by+node+model", {"owned_by": "owner", "node_id": "llm_1", "model": "gpt-4o-mini"}),
]
CASES = [(metric, label) for metric in METRICS for label, _ in SCOPES]
NOWS = (timedelta(minutes=40), timedelta(hours=1, minutes=50), timedelta(hours=3, minutes=10))


def make(data: Data, metric: str, label: str, window: str = WINDOW) -> Rule:
    fields = dict(dict(SCOPES)[label])
    if "flow_id" in fields:
        fields["flow_id"] = data.flows[fields["flow_id"]]
    version = fields.get("flow_version")
    if version == "c":
        fields["flow_version"] = data.ctx.directory.flow(data.flows["c"]).version  # type: ignore[union-attr]
    elif version is not None:
        fields["flow_version"] = data.versions[version]
    owner = OTHER if fields.get("flow_id") == data.flows["c"] else OWNER
    threshold = 0.5 if metric == "failure_rate" else 1e9
    return make_rule(
        data.ctx, owner, name=f"{metric} {label}", metric=metric, window=window, threshold=threshold, **fields
    )


def check(data: Data, targets: list[Target], now: datetime) -> int:
    """Every target's measurement equals the reference's; answers how many had runs."""
    got = measure(data.ctx, targets, now)
    with_runs = 0
    for t in targets:
        value, n = expected(t.rule, t.flow_id, data.rows, now)
        m = got[t.key]
        assert m.runs == n, (t.rule.name, t.flow_id, now)
        if value is None:
            assert m.value is None, (t.rule.name, t.flow_id, now)
        else:
            assert m.value == pytest.approx(value, rel=1e-9, abs=1e-12), (t.rule.name, t.flow_id, now)
        with_runs += n > 0
    return with_runs


@pytest.mark.parametrize(("metric", "label"), CASES, ids=[f"{m}-{lbl}" for m, lbl in CASES])
def test_each_scope_alone_matches_python(data: Data, metric: str, label: str) -> None:
    rule = make(data, metric, label)
    targets = resolve_targets(data.ctx, [rule])
    assert len(targets) == (2 if rule.owned_by else 1)
    with_runs = sum(check(data, targets, data.start + d) for d in NOWS)
    assert with_runs > 0 or "no-such" in label
    # the engine judges it and stores that value
    now = data.start + NOWS[1]
    out = AlertEngine(data.ctx).evaluate(now, rule_ids=[rule.id])
    assert out["errors"] == [] and out["targets"] == len(targets)
    states = data.ctx.store.read(lambda c: repo.load_states(c, [rule.id]))
    for t in targets:
        value, n = expected(rule, t.flow_id, data.rows, now)
        assert states[t.key].runs == n
        assert states[t.key].value == (None if value is None else pytest.approx(value, rel=1e-9, abs=1e-12))


def test_every_scope_together_matches_python(data: Data) -> None:
    """All shapes in the same pass: one query per window and level holds every GROUPING SET."""
    rules = [make(data, metric, label, window) for metric, label in CASES for window in ("15m", "1h")]
    targets = resolve_targets(data.ctx, rules)
    assert sum(check(data, targets, data.start + d) for d in NOWS) > len(targets)
    out = AlertEngine(data.ctx).evaluate(data.start + NOWS[1], rule_ids=[r.id for r in rules])
    assert out["errors"] == [] and out["targets"] == len(targets)


def test_a_version_and_node_rule_is_judged_on_its_node_runs(data: Data) -> None:
    """The reported case, by hand: failure_rate of a model's node runs in one version's runs,
    which differs from the same model's rate over all versions and from the version's run rate."""
    now = data.start + NOWS[2]
    a, new = data.flows["a"], data.versions["new"]
    rule = make_rule(
        data.ctx, flow_id=a, flow_version=new, model="gpt-4o-mini", window="1h", threshold=0.5, name="t"
    )
    inside = [r for r in data.rows if r.flow_id == a and now - timedelta(hours=1) <= r.created_at < now]
    nodes = [n for r in inside if r.flow_version == new for n in r.nodes if n.model == "gpt-4o-mini"]
    assert nodes and len(nodes) != len([r for r in inside if r.flow_version == new])
    [m] = measure(data.ctx, resolve_targets(data.ctx, [rule]), now).values()
    assert m.runs == len(nodes)
    assert m.value == pytest.approx(sum(n.status == "error" for n in nodes) / len(nodes))
