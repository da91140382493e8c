"""Search by failure signature finds exactly the runs a /failures count counts.

The dashboard links a signature to Search. Searching by its latest message found only the runs
with that exact text: "claude-3 timed out after 12 s" was left out of "<model> timed out after
<n> s" whose example was the gpt-4o-mini one, so the count said 6 and Search showed 3. The
expected runs here are the ones this test made, by the signature it meant each to have.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.access import users
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history.download import Format, download_executions
from analytics.history.filters import ExecutionFilter
from analytics.history.runs import get_stats
from analytics.history.search import count_executions, search_executions
from analytics.insights import signatures
from analytics.trends.metrics import Measure, MetricsQuery, flow_trend
from tests.factories import OWNER, READER, make_execution
from tests.factories import ROOT as ADMIN

BASE = datetime(2026, 2, 1, 12, 0, 0)
MODEL_NODE = "model_1739905519876_k3j9x2abq"
TIMEOUT = "<model> timed out after <n> s"
QUOTA = "quota exhausted for index <str>"
GLOBAL = "flow stopped after <n> retries"


def _run(flow_id: str, i: int, *, user: str, model: str, errors: dict[str, str] | None) -> dict[str, Any]:
    node_results = {
        "input_1739905519876_a1b2c3d4e": {"value": "hello"},
        MODEL_NODE: {"0": "x", "modelId": model},
        "global": {"value": "a node that happens to be named global"},
    }
    return make_execution(
        flow_id,
        created_at=(BASE + timedelta(hours=i)).isoformat(),
        user_id=user,
        status="error" if errors else "success",
        errors=errors,
        node_results=node_results,
        outputs=node_results,
    )


@pytest.fixture
def made(ctx: Context) -> tuple[str, dict[tuple[str, str], set[str]], dict[str, str]]:
    """The flow, the ids each (node, signature) should find, and each run's user."""
    for uid in ("owner", "reader"):
        users.create_user(ctx, uid)
    flow_id = flows.create_flow(ctx, OWNER, name="f", nodes=[], edges=[], access_control=None).id
    plan: list[tuple[str, str, dict[str, str] | None, list[tuple[str, str]]]] = []
    for i in range(36):
        model = ("gpt-4o-mini", "claude-3")[i % 2]
        user = "reader" if i % 3 == 0 else "owner"
        kind = i % 5
        if kind in (0, 1):  # the node's own model, folded: one signature across two models
            plan.append(
                (user, model, {MODEL_NODE: f"{model} timed out after {10 + i} s"}, [(MODEL_NODE, TIMEOUT)])
            )
        elif kind == 2:  # another signature at the same node
            plan.append(
                (user, model, {MODEL_NODE: f"quota exhausted for index 'ix{i}'"}, [(MODEL_NODE, QUOTA)])
            )
        elif kind == 3:  # the run-level error (a node named "global" has it too: counted once)
            plan.append((user, model, {"global": f"flow stopped after {i} retries"}, [("global", GLOBAL)]))
        else:
            plan.append((user, model, None, []))
    items = [_run(flow_id, i, user=u, model=m, errors=e) for i, (u, m, e, _) in enumerate(plan)]
    results = ingest.save_executions(ctx, ADMIN, items)
    assert all(r.status == "stored" for r in results), results
    expected: dict[tuple[str, str], set[str]] = {}
    owners: dict[str, str] = {}
    for r, (user, _, _, sigs) in zip(results, plan, strict=True):
        assert r.id is not None
        owners[r.id] = user
        for key in sigs:
            expected.setdefault(key, set()).add(r.id)
    return flow_id, expected, owners


def _filter(flow_id: str, node_id: str, signature: str) -> ExecutionFilter:
    return ExecutionFilter.model_validate(
        {
            "flow_id": {"any_": [flow_id]},
            "error_signature": {"node_id": node_id, "equals_": signature},
            "created_at": {"after_": BASE.isoformat(), "before_": (BASE + timedelta(days=3)).isoformat()},
        }
    )


def test_each_signature_finds_the_runs_it_counts(ctx: Context, made: Any) -> None:
    flow_id, expected, owners = made
    end = BASE + timedelta(days=3)
    assert set(expected) == {(MODEL_NODE, TIMEOUT), (MODEL_NODE, QUOTA), ("global", GLOBAL)}
    for viewer in (OWNER, READER):
        rows = signatures.failure_signatures(ctx, viewer, flow_id, start=BASE, end=end).to_pylist()
        assert {(r["node_id"], r["signature"]) for r in rows} == set(expected)
        for row in rows:
            key = (row["node_id"], row["signature"])
            mine = {i for i in expected[key] if viewer is OWNER or owners[i] == "reader"}
            f = _filter(flow_id, *key)
            page = search_executions(ctx, viewer, filter=f, limit=100)
            assert {h.id for h in page.items} == mine, key
            assert page.total == row["count"] == len(mine)
            assert count_executions(ctx, viewer, filter=f) == len(mine)
            assert get_stats(ctx, viewer, flow_id, f).total_executions == len(mine)
            trend = flow_trend(
                ctx,
                viewer,
                flow_id,
                MetricsQuery(measures=[Measure.RUNS], start=BASE, end=end, filter=f, previous=False),
            )
            assert sum(trend.rows.column("runs").to_pylist()) == len(mine)
            lines = b"".join(download_executions(ctx, viewer, Format.JSONL, filter=f).chunks).splitlines()
            assert len(lines) == len(mine)


def test_a_signature_nobody_has_finds_nothing(ctx: Context, made: Any) -> None:
    flow_id, _, _ = made
    for node, signature in ((MODEL_NODE, GLOBAL), ("global", TIMEOUT), ("nowhere", TIMEOUT)):
        page = search_executions(ctx, OWNER, filter=_filter(flow_id, node, signature))
        assert page.total == 0 and page.items == []


@pytest.mark.parametrize(
    ("leaf", "field"),
    [
        ({"node_id": "n", "equals_": "x" * 501}, "equals_"),
        ({"node_id": "n"}, "equals_"),
        ({"node_id": "n", "equals_": "x", "contains_": "y"}, "contains_"),
    ],
)
def test_bad_signature_filters_name_the_field(leaf: dict[str, Any], field: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        ExecutionFilter.model_validate({"error_signature": leaf})
    assert any(field in err["loc"] for err in raised.value.errors())


def test_an_unresolved_signature_is_not_compiled_silently() -> None:
    f = ExecutionFilter.model_validate({"error_signature": {"node_id": "n", "equals_": "x"}})
    with pytest.raises(RuntimeError):
        f.clauses()


def test_an_empty_message_or_node_id_is_a_signature_too(ctx: Context, made: Any) -> None:
    """/failures has rows for an empty or blank message (signature "") and for a node whose id
    is "": the filter refused both (min_length 1), so those rows could not be searched."""
    flow_id, _, _ = made
    node_results = {"": {"x": 1}, "n1": {"x": 1}}
    items = [
        make_execution(flow_id, status="error", node_results=node_results, outputs=node_results, errors=e)
        for e in ({"n1": "   "}, {"n1": ""}, {"": "boom 7"}, {"global": ""})
    ]
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    rows = signatures.failure_signatures(ctx, OWNER, flow_id).to_pylist()
    wanted = {("n1", ""), ("", "boom <n>"), ("global", "")}
    found = {(r["node_id"], r["signature"]): r["count"] for r in rows}
    assert wanted <= set(found)
    for key in wanted:
        f = ExecutionFilter.model_validate(
            {"flow_id": {"any_": [flow_id]}, "error_signature": {"node_id": key[0], "equals_": key[1]}}
        )
        assert count_executions(ctx, OWNER, filter=f) == found[key], key
