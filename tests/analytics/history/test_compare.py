"""Compare and replay on a real DuckDB file: the diff, node alignment, ordering, visibility."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import InvalidInput, NotFound
from analytics.flows import registry as flows
from analytics.history import ingest, replay
from analytics.history.compare import (
    MAX_CHANGES,
    Change,
    Comparison,
    NodeComparison,
    compare_executions,
    diff_json,
)
from tests.factories import OWNER, READER, STRANGER
from tests.factories import ROOT as ADMIN

# -- diff_json ---------------------------------------------------------------------------------


def _kinds(old: Any, new: Any) -> list[tuple[str, str]]:
    return [(c.path, c.kind) for c in diff_json(old, new).changes]


def test_equal_values_have_no_diff() -> None:
    payload = {"a": [1, {"b": None}], "c": "x", "n": 1}
    assert diff_json(payload, {"a": [1, {"b": None}], "c": "x", "n": 1.0}).empty


def test_nested_change_added_and_removed_keys() -> None:
    old = {"usage": {"prompt_tokens": 3, "total": 5}, "text": "hi", "gone": 1}
    new = {"usage": {"prompt_tokens": 4, "total": 5}, "text": "hi", "extra": {"k": True}}
    d = diff_json(old, new)
    assert d.changes == (
        Change("/usage/prompt_tokens", "changed", 3, 4),
        Change("/gone", "removed", old=1),
        Change("/extra", "added", new={"k": True}),
    )
    assert not d.truncated


def test_lists_compare_by_position() -> None:
    assert _kinds([1, 2, 3], [1, 5]) == [("/1", "changed"), ("/2", "removed")]
    assert _kinds([1], [1, [2]]) == [("/1", "added")]
    assert _kinds({"l": [{"a": 1}, {"a": 2}]}, {"l": [{"a": 1}, {"a": 3}]}) == [("/l/1/a", "changed")]


def test_type_changes_and_booleans_are_not_numbers() -> None:
    assert _kinds({"v": 1}, {"v": True}) == [("/v", "changed")]
    assert _kinds({"v": [1]}, {"v": {"0": 1}}) == [("/v", "changed")]
    assert _kinds({"v": None}, {"v": 0}) == [("/v", "changed")]
    assert _kinds("a", "b") == [("", "changed")]


def test_pointer_escapes_slash_and_tilde() -> None:
    assert _kinds({"a/b": {"~c": 1}}, {"a/b": {"~c": 2}}) == [("/a~1b/~0c", "changed")]


def test_depth_cap_reports_the_subtree_and_says_so() -> None:
    def nest(depth: int, leaf: int) -> Any:
        value: Any = leaf
        for _ in range(depth):
            value = {"x": value}
        return value

    d = diff_json(nest(5, 1), nest(5, 2), max_depth=2)
    assert [c.path for c in d.changes] == ["/x/x"]
    assert d.changes[0].old == nest(3, 1) and d.truncated
    assert not diff_json(nest(5, 1), nest(5, 2)).truncated


def test_change_cap_stops_and_says_so() -> None:
    d = diff_json({str(i): i for i in range(500)}, {str(i): -i - 1 for i in range(500)})
    assert len(d.changes) == MAX_CHANGES and d.truncated
    assert d.changes[0].path == "/0"


def test_very_deep_payload_does_not_recurse_without_bound() -> None:
    deep: Any = 1
    for _ in range(400):
        deep = [deep]
    other: Any = 2
    for _ in range(400):
        other = [other]
    assert diff_json(deep, other).truncated


# -- compare on the store ----------------------------------------------------------------------


@pytest.fixture
def flow_id(ctx: Context) -> str:
    for uid in ("owner", "reader", "stranger"):
        users.create_user(ctx, uid)
    return flows.create_flow(
        ctx,
        OWNER,
        name="f",
        nodes=[{"id": "a"}, {"id": "b"}],
        edges=[],
        access_control={"read": {"user_ids": ["reader"]}},
    ).id


def save(
    ctx: Context,
    flow_id: str,
    node_results: dict[str, Any] | None,
    *,
    user: str = "owner",
    errors: dict[str, Any] | None = None,
    **kw: Any,
) -> str:
    form = {
        "flow_id": flow_id,
        "status": "error" if errors else "success",
        "inputs": {"prompt": "hello"},
        "node_results": node_results,
        "outputs": node_results,
        "errors": errors,
        "execution_time": 10,
        "user_id": user,
        **kw,
    }
    [result] = ingest.save_executions(ctx, ADMIN, [form])
    assert result.status == "stored", result
    assert result.id is not None
    return result.id


def by_id(c: Comparison) -> dict[str, NodeComparison]:
    return {n.node_id: n for n in c.nodes}


def test_nodes_aligned_by_id_with_diffs_and_differing_first(ctx: Context, flow_id: str) -> None:
    first = save(
        ctx,
        flow_id,
        {
            "input_1": {"value": "hello"},
            "model_1": {
                "text": "hi",
                "duration_ms": 40,
                "usage": {"prompt_tokens": 2, "completion_tokens": 1},
            },
            "same_1": {"value": [1, 2]},
            "gone_1": {"value": 1},
        },
    )
    second = save(
        ctx,
        flow_id,
        {
            "input_1": {"value": "hello"},
            "model_1": {
                "text": "hey",
                "duration_ms": 90,
                "usage": {"prompt_tokens": 2, "completion_tokens": 3},
            },
            "same_1": {"value": [1, 2]},
            "new_1": {"value": 2},
        },
        errors={"same_1": "boom"},
    )
    c = compare_executions(ctx, OWNER, [first, second])
    assert [e.id for e in c.executions] == [first, second]
    # differing first (first run's order, then nodes only the later run has), then the rest
    assert [n.node_id for n in c.nodes] == ["model_1", "same_1", "gone_1", "new_1", "input_1"]
    assert [n.differs for n in c.nodes] == [True, True, True, True, False]
    nodes = by_id(c)

    model = nodes["model_1"]
    assert model.runs[0].diff is None  # the baseline
    assert (model.runs[0].duration_ms, model.runs[1].duration_ms) == (40, 90)
    assert (model.runs[0].tokens_out, model.runs[1].tokens_out) == (1, 3)
    assert model.runs[1].diff is not None
    assert [(ch.path, ch.old, ch.new) for ch in model.runs[1].diff.changes] == [
        ("/text", "hi", "hey"),
        ("/duration_ms", 40, 90),
        ("/usage/completion_tokens", 1, 3),
    ]

    same = nodes["same_1"]  # same result, but the second run failed there: a status change
    assert [r.status for r in same.runs] == ["success", "error"]
    assert same.runs[1].error == "boom"
    assert same.runs[1].diff is not None and same.runs[1].diff.empty

    gone = nodes["gone_1"]
    assert [r.present for r in gone.runs] == [True, False]
    assert gone.runs[1].diff is not None
    assert gone.runs[1].diff.changes == (Change("", "removed", old={"value": 1}),)
    new = nodes["new_1"]
    assert [r.present for r in new.runs] == [False, True]
    assert new.runs[1].diff is not None
    assert new.runs[1].diff.changes == (Change("", "added", new={"value": 2}),)
    assert nodes["input_1"].runs[1].diff is not None and nodes["input_1"].runs[1].diff.empty


def test_three_runs_each_diffed_against_the_first(ctx: Context, flow_id: str) -> None:
    ids = [save(ctx, flow_id, {"n": {"v": v}}) for v in (1, 1, 2)]
    [node] = compare_executions(ctx, OWNER, ids).nodes
    assert node.differs
    assert [r.diff.empty if r.diff else None for r in node.runs] == [None, True, False]


def test_identical_runs_keep_the_first_runs_order(ctx: Context, flow_id: str) -> None:
    results = {"z": {"v": 1}, "a": {"v": 2}, "m": {"v": 3}}
    c = compare_executions(ctx, OWNER, [save(ctx, flow_id, results), save(ctx, flow_id, results)])
    assert [n.node_id for n in c.nodes] == ["z", "a", "m"]
    assert not any(n.differs for n in c.nodes)


def test_empty_and_null_results_compare(ctx: Context, flow_id: str) -> None:
    c = compare_executions(ctx, OWNER, [save(ctx, flow_id, None), save(ctx, flow_id, {"n": 1})])
    [node] = c.nodes
    assert node.differs and [r.present for r in node.runs] == [False, True]


def test_invisible_unknown_or_malformed_runs_are_not_found(ctx: Context, flow_id: str) -> None:
    mine = save(ctx, flow_id, {"n": 1}, user="reader")
    theirs = save(ctx, flow_id, {"n": 2}, user="owner")
    private = flows.create_flow(ctx, OWNER, name="p", nodes=[], edges=[], access_control={}).id
    hidden = save(ctx, private, {"n": 3})
    for ids in ([mine, theirs], [mine, hidden], [mine, "00000000-0000-7000-8000-000000000000"], [mine, "x"]):
        with pytest.raises(NotFound, match=r"^Execution not found$"):
            compare_executions(ctx, READER, ids)
    with pytest.raises(NotFound, match=r"^Execution not found$"):
        compare_executions(ctx, STRANGER, [theirs, mine])  # cannot read the flow at all
    assert len(compare_executions(ctx, OWNER, [mine, theirs]).executions) == 2


def test_runs_of_two_readable_flows_compare(ctx: Context, flow_id: str) -> None:
    other = flows.duplicate_flow(ctx, OWNER, flow_id).id
    a, b = save(ctx, flow_id, {"n": 1}), save(ctx, other, {"n": 2})
    c = compare_executions(ctx, OWNER, [a, b])
    assert [e.flow_id for e in c.executions] == [flow_id, other]
    with pytest.raises(NotFound):  # the duplicate is private to its owner
        compare_executions(ctx, READER, [a, b])


@pytest.mark.parametrize("count", [0, 1, 11])
def test_run_count_bounds(ctx: Context, flow_id: str, count: int) -> None:
    ids = [save(ctx, flow_id, {"n": i}) for i in range(count)]
    with pytest.raises(InvalidInput) as exc:
        compare_executions(ctx, OWNER, ids)
    assert exc.value.field == "ids"


def test_the_same_run_twice_is_refused(ctx: Context, flow_id: str) -> None:
    run = save(ctx, flow_id, {"n": 1})
    with pytest.raises(InvalidInput, match="once"):
        compare_executions(ctx, OWNER, [run, run.upper()])


# -- replay ------------------------------------------------------------------------------------


def test_replay_payload_is_the_inputs_and_the_definition_that_ran(ctx: Context, flow_id: str) -> None:
    original = save(ctx, flow_id, {"a": {"v": 1}}, inputs={"prompt": "hi", "files": ["f.txt"]})
    flows.update_flow(ctx, OWNER, flow_id, {"nodes": [{"id": "a"}, {"id": "c"}], "edges": [{"s": "a"}]})
    p = replay.replay_payload(ctx, OWNER, flow_id, original)
    assert p.inputs == {"prompt": "hi", "files": ["f.txt"]}
    assert (p.definition.nodes, p.definition.edges) == ([{"id": "a"}, {"id": "b"}], [])
    assert not p.definition_is_current
    assert p.body == {"flow_id": flow_id, "inputs": p.inputs, "replay_of": original}

    replayed = ingest.save_execution(
        ctx,
        OWNER,
        {**p.body, "status": "success", "node_results": {"a": {"v": 2}}, "execution_time": 5},
        flow_id=flow_id,
    )
    assert replayed.replay_of == original
    assert replayed.flow_version != p.definition.version  # it ran the edited flow
    assert [s.id for s in replay.list_replays(ctx, OWNER, flow_id, original)] == [replayed.id]
    for start in (original, replayed.id):  # one call, from either end of the link
        c = replay.compare_with_replays(ctx, OWNER, flow_id, start)
        assert [e.id for e in c.executions] == [original, replayed.id]
        assert c.nodes[0].runs[1].diff is not None
        assert c.nodes[0].runs[1].diff.changes == (Change("/v", "changed", 1, 2),)


def test_latest_replay_is_compared(ctx: Context, flow_id: str) -> None:
    original = save(ctx, flow_id, {"a": 1})
    save(ctx, flow_id, {"a": 2}, replay_of=original, created_at="2026-01-01T00:00:00Z")
    latest = save(ctx, flow_id, {"a": 3}, replay_of=original, created_at="2026-01-02T00:00:00Z")
    c = replay.compare_with_replays(ctx, OWNER, flow_id, original)
    assert c.executions[1].id == latest
    assert len(replay.list_replays(ctx, OWNER, flow_id, original)) == 2
    assert len(replay.list_replays(ctx, OWNER, flow_id, original, limit=1)) == 1


def test_unknown_version_falls_back_to_the_current_definition(ctx: Context, flow_id: str) -> None:
    run = save(ctx, flow_id, {"a": 1})
    flows.update_flow(ctx, OWNER, flow_id, {"nodes": [{"id": "new"}]})
    ctx.store.write(lambda c: c.execute("DELETE FROM flow_versions WHERE flow_id = ?", [flow_id]))
    p = replay.replay_payload(ctx, OWNER, flow_id, run)
    assert p.definition_is_current and p.definition.nodes == [{"id": "new"}]


def test_replay_respects_row_visibility(ctx: Context, flow_id: str) -> None:
    theirs = save(ctx, flow_id, {"a": 1}, user="owner")
    save(ctx, flow_id, {"a": 2}, user="owner", replay_of=theirs)
    mine = save(ctx, flow_id, {"a": 1}, user="reader")
    for fn in (replay.replay_payload, replay.list_replays, replay.compare_with_replays):
        with pytest.raises(NotFound, match=r"^Execution not found$"):
            fn(ctx, READER, flow_id, theirs)
    with pytest.raises(NotFound, match="no replay"):
        replay.compare_with_replays(ctx, READER, flow_id, mine)
    assert replay.list_replays(ctx, READER, flow_id, mine) == []
    with pytest.raises(InvalidInput):
        replay.list_replays(ctx, OWNER, flow_id, theirs, limit=10_000)
