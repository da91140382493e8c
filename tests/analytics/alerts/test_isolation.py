"""One rule that fails to evaluate never stops the others.

Whatever breaks for one (rule, flow), its query, its judgement, its notification or the rule's
stored row, the engine judges every other one, stores and notifies as usual, keeps the broken
one's state as it was and lists it in the summary's `errors`; the scheduled job does the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.alerts import engine as engine_module
from analytics.alerts import evaluate
from analytics.alerts import repository as repo
from analytics.alerts.engine import AlertEngine
from analytics.alerts.lifecycle import run_alerts_job
from analytics.alerts.rules import Rule
from analytics.alerts.state_machine import Measurement, RuleState, Step
from analytics.alerts.state_machine import step as real_step
from analytics.core.context import Context
from tests.factories import OTHER, OWNER
from tests.factories.alerts import Collect, Run, Setup, hour_ago_base, make_rule, save, setup_flows


@pytest.fixture
def s(ctx: Context) -> Setup:
    setup = setup_flows(ctx)
    start = hour_ago_base()
    runs = [
        Run(setup.flows[f], start + timedelta(minutes=i), "error", 100, "", "llm_1", "model-a", "error", 5)
        for f in ("a", "c")
        for i in range(5)
    ]
    save(ctx, runs)
    return setup


NOW_MIN = 10


def now_of(minutes: int = NOW_MIN) -> datetime:
    return hour_ago_base() + timedelta(minutes=minutes)


def states(ctx: Context, rules: list[Rule]) -> dict[str, RuleState]:
    found = ctx.store.read(lambda c: repo.load_states(c, [r.id for r in rules]))
    return {rule_id: state for (rule_id, _), state in found.items()}


def rules_of(s: Setup) -> dict[str, Rule]:
    """Rules of every level and two windows, so a failure shares its query with good rules."""
    a, c = s.flows["a"], s.flows["c"]
    return {
        "run": make_rule(s.ctx, flow_id=a, window="1h"),
        "bad": make_rule(s.ctx, flow_id=a, window="1h", node_id="llm_1"),
        "model": make_rule(s.ctx, flow_id=a, window="1h", model="model-a"),
        "bad-version": make_rule(s.ctx, flow_id=a, window="1h", node_id="llm_1", flow_version="x"),
        "other": make_rule(s.ctx, OTHER, flow_id=c, window="2h", metric="run_count", threshold=3),
        "owned": make_rule(
            s.ctx, owned_by="owner", window="2h", model="model-a", metric="error_count", threshold=1
        ),
    }


def test_a_rule_whose_query_fails_does_not_stop_the_others(s: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = rules_of(s)
    good = [r for name, r in rules.items() if not name.startswith("bad")]
    bad = [rules["bad"], rules["bad-version"]]
    AlertEngine(s.ctx).evaluate(now_of(NOW_MIN - 5))
    before = states(s.ctx, bad)
    assert {before[r.id].state.value for r in bad} == {"FIRING", "NO_DATA"}
    real_query = evaluate._query

    def query(level: str, shapes: set[tuple[str, ...]], percentile: bool) -> str:
        """Every query holding the node-only shape fails, as the version+node one used to."""
        sql = real_query(level, shapes, percentile)
        return (
            sql.replace("GROUPING SETS", "GROUPING SETS ((no_such_column)),")
            if ("node_id",) in shapes
            else sql
        )

    monkeypatch.setattr(evaluate, "_query", query)
    out = AlertEngine(s.ctx).evaluate(now_of())
    assert [(e["rule_id"], e["flow_id"]) for e in out["errors"]] == [(rules["bad"].id, s.flows["a"])]
    assert "no_such_column" in out["errors"][0]["error"]
    after = states(s.ctx, [*good, *bad])
    assert after[rules["bad"].id] == before[rules["bad"].id]  # not judged: as it was
    for r in [*good, rules["bad-version"]]:
        assert after[r.id].evaluated_at == now_of(), r.name
    assert (after[rules["run"].id].state.value, after[rules["run"].id].runs) == ("FIRING", 5)
    assert (after[rules["model"].id].value, after[rules["model"].id].runs) == (1.0, 5)
    assert after[rules["other"].id].state.value == "FIRING"  # 5 runs of flow c > 3
    # the scheduled job goes on the same way, and says which rule failed
    result = run_alerts_job(s.ctx)
    assert [e["rule_id"] for e in result["errors"]] == [rules["bad"].id]
    assert result["targets"] == len(rules) + 1  # owned_by: flows a and b


def test_measure_without_an_errors_dict_raises_after_measuring(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = make_rule(s.ctx, flow_id=s.flows["a"], window="1h", node_id="llm_1")
    monkeypatch.setattr(evaluate, "_query", lambda *_: "SELECT no_such_column")
    errors: dict[tuple[str, str], str] = {}
    targets = evaluate.resolve_targets(s.ctx, [rule])
    assert evaluate.measure(s.ctx, targets, now_of(), errors=errors) == {}
    assert list(errors) == [(rule.id, s.flows["a"])]
    with pytest.raises(RuntimeError, match=rule.id):
        evaluate.measure(s.ctx, targets, now_of())


def test_a_rule_that_fails_to_be_judged_does_not_stop_the_others(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rules_of(s)

    def step(rule: Rule, prev: RuleState | None, m: Measurement, now: datetime) -> Step:
        if rule.id == rules["model"].id:
            raise ZeroDivisionError("judging went wrong")
        return real_step(rule, prev, m, now)

    monkeypatch.setattr(engine_module, "step", step)
    out = AlertEngine(s.ctx).evaluate(now_of())
    assert out["errors"] == [
        {
            "rule_id": rules["model"].id,
            "flow_id": s.flows["a"],
            "error": "ZeroDivisionError: judging went wrong",
        }
    ]
    judged = states(s.ctx, list(rules.values()))
    assert set(judged) == {r.id for name, r in rules.items() if name != "model"}
    assert out["transitions"] == len(rules)  # all but "model", and owned_by for flows a and b
    assert judged[rules["run"].id].state.value == "FIRING"


def test_an_unreadable_stored_rule_does_not_stop_the_others(s: Setup) -> None:
    rule = make_rule(s.ctx, flow_id=s.flows["a"], window="1h")
    broken = make_rule(s.ctx, flow_id=s.flows["a"], window="1h")
    # a row no valid rule has (written by hand, or by a version that allowed it)
    s.ctx.store.write(
        lambda c: c.execute("UPDATE alert_rules SET metric = 'latency' WHERE id = ?", [broken.id])
    )
    out = AlertEngine(s.ctx).evaluate(now_of())
    assert out["rules"] == 1 and out["transitions"] == 1
    assert [(e["rule_id"], e["flow_id"]) for e in out["errors"]] == [(broken.id, None)]
    assert "metric" in out["errors"][0]["error"]
    assert states(s.ctx, [rule])[rule.id].state.value == "FIRING"
    assert [e["rule_id"] for e in run_alerts_job(s.ctx)["errors"]] == [broken.id]  # the job, at its now


def test_a_notification_that_cannot_be_made_does_not_stop_the_others(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics.alerts import service
    from analytics.alerts.channels import ChannelCreate

    form = ChannelCreate.model_validate(
        {"name": "hook", "url": "http://127.0.0.1:9/hook", "secret": "s" * 20}
    )
    channel = service.create_channel(s.ctx, OWNER, form)
    good = make_rule(s.ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel.id])
    bad = make_rule(s.ctx, flow_id=s.flows["a"], window="1h", channel_ids=[channel.id], node_id="llm_1")
    real_summary = engine_module.rule_summary

    def summary(rule: Rule) -> dict[str, Any]:
        if rule.id == bad.id:
            raise ValueError("cannot describe it")
        return real_summary(rule)

    monkeypatch.setattr(engine_module, "rule_summary", summary)
    collect = Collect()
    out = AlertEngine(s.ctx, collect).evaluate(now_of())  # type: ignore[arg-type]
    assert [n.rule_id for n in collect.sent] == [good.id] and out["notifications"] == 1
    assert [(e["rule_id"], e["error"]) for e in out["errors"]] == [(bad.id, "ValueError: cannot describe it")]
    assert {r.state.value for r in states(s.ctx, [good, bad]).values()} == {"FIRING"}
