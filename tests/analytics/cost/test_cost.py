"""Tokens, estimates, prices and cost at ingest; flow versions stamped on runs."""

from __future__ import annotations

from datetime import date

import pytest

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.cost.prices import (
    Price,
    PriceTable,
    parse_prices,
    replace_prices,
    shipped_prices,
)
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history import runs as history
from analytics.history.node_facts import estimate_tokens, node_facts, result_text
from tests.factories import OWNER


@pytest.fixture
def flow_id(ctx: Context) -> str:
    users.create_user(ctx, "owner")
    return flows.create_flow(ctx, OWNER, name="f", nodes=[{"id": "model_1"}], edges=[]).id


def _table(*prices: Price) -> PriceTable:
    t = PriceTable()
    t._prices = sorted(
        prices, key=lambda p: (-sum(p.model_pattern.count(c) for c in "*?["), len(p.model_pattern))
    )
    return t


def test_most_specific_pattern_valid_on_the_date_wins() -> None:
    t = _table(
        Price("gpt-4o*", 2.5, 10.0, date(2024, 8, 6)),
        Price("gpt-4o-mini*", 0.15, 0.6, date(2024, 7, 18)),
        Price("gpt-4o-mini*", 0.30, 1.2, date(2026, 1, 1)),
    )
    assert t.price_for("gpt-4o-mini-2024", date(2025, 1, 1)).input_per_million == 0.15  # type: ignore[union-attr]
    assert t.price_for("gpt-4o-mini", date(2026, 2, 1)).input_per_million == 0.30  # type: ignore[union-attr]
    assert t.price_for("gpt-4o", date(2025, 1, 1)).input_per_million == 2.5  # type: ignore[union-attr]
    assert t.price_for("gpt-4o", date(2024, 1, 1)) is None  # before any valid_from
    assert t.price_for("unknown", date(2025, 1, 1)) is None
    assert t.cost("gpt-4o", date(2025, 1, 1), 1_000_000, 500_000) == pytest.approx(2.5 + 5.0)
    assert t.cost("unknown", date(2025, 1, 1), 10, 10) is None


def test_shipped_prices_parse_and_bad_prices_name_the_field() -> None:
    assert any(p.model_pattern == "gpt-4o-mini*" for p in shipped_prices())
    with pytest.raises(InvalidInput, match=r"prices\[1\]"):
        parse_prices(
            [
                {
                    "model_pattern": "a",
                    "input_per_million": 1,
                    "output_per_million": 1,
                    "valid_from": "2024-01-01",
                },
                {"model_pattern": "b"},
            ]
        )
    with pytest.raises(InvalidInput):
        parse_prices(
            [
                {
                    "model_pattern": "a",
                    "input_per_million": -1,
                    "output_per_million": 1,
                    "valid_from": "2024-01-01",
                }
            ]
        )


def test_estimates_come_from_text_length_and_are_flagged() -> None:
    spread = {str(i): ch for i, ch in enumerate("x" * 41)} | {"modelId": "gpt-4o", "prompt": "y" * 8}
    (fact,) = node_facts({"model_1_a": spread}, None)
    assert result_text(spread) == "x" * 41
    assert (fact.tokens_in, fact.tokens_out, fact.tokens_estimated) == (2, estimate_tokens("x" * 41), True)
    assert estimate_tokens("x" * 41) == 11
    reported = {"modelId": "gpt-4o", "usage": {"prompt_tokens": 5, "completion_tokens": 6}, "0": "H"}
    (fact,) = node_facts({"model_1_a": reported}, None)
    assert (fact.tokens_in, fact.tokens_out, fact.tokens_estimated) == (5, 6, False)
    (fact,) = node_facts({"input_1_a": {"value": "no model here"}}, None)
    assert (fact.tokens_in, fact.tokens_out, fact.tokens_estimated) == (None, None, False)
    (fact,) = node_facts({"model_1_a": {"modelId": "m", "0": "a"}}, None, prompt="from the run")
    assert fact.tokens_in == estimate_tokens("from the run")


def test_cost_and_version_are_stamped_at_ingest(ctx: Context, flow_id: str) -> None:
    ctx.store.write(lambda c: replace_prices(c, [Price("gpt-4o*", 2.0, 8.0, date(2020, 1, 1))]))
    ctx.store.read(ctx.prices.load)
    run = {
        "flow_id": flow_id,
        "status": "success",
        "execution_time": 5,
        "node_results": {
            "model_1_a": {"modelId": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}},
            "model_1_b": {"modelId": "llama3", "usage": {"prompt_tokens": 10, "completion_tokens": 10}},
        },
    }
    saved = ingest.save_execution(ctx, OWNER, run, flow_id=flow_id)
    got = history.get_execution(ctx, OWNER, flow_id, saved.id)
    assert got.cost == pytest.approx((1000 * 2.0 + 2000 * 8.0) / 1e6)  # llama is unpriced: no cost, not 0
    assert (got.tokens_in, got.tokens_out, got.tokens_estimated) == (1010, 2010, False)
    flow = flows.get_flow(ctx, OWNER, flow_id)
    assert got.flow_version == flow.version and len(flow.version) == 16
    nodes = ctx.store.read(
        lambda c: c.execute(
            "SELECT node_id, cost FROM execution_nodes WHERE execution_id = ? ORDER BY node_id", [saved.id]
        ).fetchall()
    )
    assert nodes[0][1] == pytest.approx(0.018) and nodes[1][1] is None


def test_a_new_graph_is_a_new_version_and_every_version_is_kept(ctx: Context, flow_id: str) -> None:
    first = flows.get_flow(ctx, OWNER, flow_id).version
    renamed = flows.update_flow(ctx, OWNER, flow_id, {"name": "renamed"})
    assert renamed.version == first  # a name is not the graph
    changed = flows.update_flow(ctx, OWNER, flow_id, {"nodes": [{"id": "model_1"}, {"id": "model_2"}]})
    assert changed.version != first
    run = ingest.save_execution(
        ctx, OWNER, {"flow_id": flow_id, "status": "success", "execution_time": 1}, flow_id=flow_id
    )
    assert run.flow_version == changed.version
    kept = ctx.store.read(
        lambda c: c.execute("SELECT version FROM flow_versions WHERE flow_id = ?", [flow_id]).fetchall()
    )
    assert {v for (v,) in kept} == {first, changed.version}


def test_replay_of_must_be_a_run_of_the_same_flow(ctx: Context, flow_id: str) -> None:
    base = {"flow_id": flow_id, "status": "success", "execution_time": 1}
    original = ingest.save_execution(ctx, OWNER, base, flow_id=flow_id)
    replay = ingest.save_execution(ctx, OWNER, {**base, "replay_of": original.id}, flow_id=flow_id)
    assert history.get_execution(ctx, OWNER, flow_id, replay.id).replay_of == original.id
    other = flows.create_flow(ctx, OWNER, name="g", nodes=[], edges=[]).id
    with pytest.raises(InvalidInput, match="replay_of"):
        ingest.save_execution(ctx, OWNER, {**base, "flow_id": other, "replay_of": original.id}, flow_id=other)
    with pytest.raises(InvalidInput, match="replay_of"):
        ingest.save_execution(
            ctx, OWNER, {**base, "replay_of": "0190a0a0-0000-7000-8000-000000000000"}, flow_id=flow_id
        )


def test_recompute_in_slices_prices_every_run_once(
    ctx: Context, flow_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole range was one write (every save waited 15-40 s behind it at 250,000 runs); it is
    now one write a slice of runs, cut at run times, with ties on a cut in the later slice."""
    from datetime import datetime, timedelta

    from analytics.cost import report as cost_report

    monkeypatch.setattr(cost_report, "REPRICE_SLICE", 3)
    base = datetime(2026, 3, 1)
    times = [base + timedelta(minutes=i // 2) for i in range(14)]  # pairs of equal times
    node_results = {
        "model_1": {"modelId": "acme-1", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}}
    }
    items = [
        {
            "flow_id": flow_id,
            "status": "success",
            "execution_time": 1,
            "created_at": t.isoformat(),
            "node_results": node_results,
            "outputs": node_results,
        }
        for t in times
    ]
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, OWNER, items))
    others = [p for p in ctx.prices.all() if p.model_pattern != "acme-*"]
    cost_report.set_prices(ctx, [*others, Price("acme-*", 7.0, 0.0, date(2020, 1, 1))])
    commits = ctx.store.stats.commits
    assert cost_report.recompute_costs(ctx, start=base, end=base + timedelta(days=1)) == 14
    assert ctx.store.stats.commits - commits >= 5  # 14 runs, 3 a slice: one write each
    costs = ctx.store.read(lambda c: [r[0] for r in c.execute("SELECT cost FROM executions").fetchall()])
    assert costs == [pytest.approx(7.0)] * 14
