"""Alert writes racing deletes in one group commit: each is checked again on the writer.

The checks ran before the write was queued; a delete queued just before it committed first, and
the write then went in anyway: a PATCH of a deleted rule answered 200 and left a channel link, a
rule kept a deleted channel (its notices failed with a traceback), a silence outlived its rule,
and a PATCH of a deleted channel answered 200.
"""

from __future__ import annotations

import pytest

from analytics.alerts import service
from analytics.alerts.channels import ChannelCreate, ChannelUpdate
from analytics.alerts.rules import RuleCreate, RuleUpdate
from analytics.alerts.silences import SilenceCreate
from analytics.core.context import Context
from analytics.core.errors import InvalidInput, NotFound
from tests.factories import OWNER
from tests.factories.alerts import make_rule, setup_flows
from tests.factories.writer import in_one_commit


def _channel(ctx: Context) -> str:
    form = ChannelCreate(name="hook", url="http://127.0.0.1:9/hook", secret="s" * 16)
    return service.create_channel(ctx, OWNER, form).id


def _count(ctx: Context, sql: str) -> int:
    return int(ctx.store.read(lambda c: c.execute(sql).fetchall())[0][0])


def test_a_patch_of_a_rule_deleted_meanwhile_is_a_404_and_writes_nothing(ctx: Context) -> None:
    setup = setup_flows(ctx)
    channel = _channel(ctx)
    rule = make_rule(ctx, flow_id=setup.flows["a"])
    delete, patch = in_one_commit(
        ctx,
        lambda: service.delete_rule(ctx, OWNER, rule.id),
        lambda: service.update_rule(ctx, OWNER, rule.id, RuleUpdate(channel_ids=[channel])),
    )
    assert delete is None and isinstance(patch, NotFound)
    assert _count(ctx, "SELECT count(*) FROM alert_rules") == 0
    assert _count(ctx, "SELECT count(*) FROM alert_rule_channels") == 0


@pytest.mark.parametrize("how", ["create", "update"])
def test_a_rule_naming_a_channel_deleted_meanwhile_is_refused(ctx: Context, how: str) -> None:
    setup = setup_flows(ctx)
    channel = _channel(ctx)
    rule = make_rule(ctx, flow_id=setup.flows["a"])
    form = {
        "name": "r",
        "metric": "failure_rate",
        "flow_id": setup.flows["a"],
        "window": 60,
        "threshold": 0.5,
    }
    write = {
        "create": lambda: service.create_rule(ctx, OWNER, RuleCreate(**form, channel_ids=[channel])),
        "update": lambda: service.update_rule(ctx, OWNER, rule.id, RuleUpdate(channel_ids=[channel])),
    }[how]
    delete, refused = in_one_commit(ctx, lambda: service.delete_channel(ctx, OWNER, channel), write)
    assert delete is None
    assert isinstance(refused, InvalidInput) and refused.field == "channel_ids"
    assert _count(ctx, "SELECT count(*) FROM alert_rule_channels") == 0
    assert _count(ctx, "SELECT count(*) FROM alert_rules") == 1  # the first rule, unchanged


def test_a_silence_of_a_rule_deleted_meanwhile_is_refused(ctx: Context) -> None:
    setup = setup_flows(ctx)
    rule = make_rule(ctx, flow_id=setup.flows["a"])
    form = SilenceCreate(rule_id=rule.id, duration=3600, comment="deploy")  # type: ignore[arg-type]
    delete, silence = in_one_commit(
        ctx,
        lambda: service.delete_rule(ctx, OWNER, rule.id),
        lambda: service.create_silence(ctx, OWNER, form),
    )
    assert delete is None
    assert isinstance(silence, InvalidInput) and silence.field == "rule_id"
    assert _count(ctx, "SELECT count(*) FROM alert_silences") == 0


def test_a_patch_of_a_channel_deleted_meanwhile_is_a_404(ctx: Context) -> None:
    setup_flows(ctx)
    channel = _channel(ctx)
    delete, patch = in_one_commit(
        ctx,
        lambda: service.delete_channel(ctx, OWNER, channel),
        lambda: service.update_channel(ctx, OWNER, channel, ChannelUpdate(name="renamed")),
    )
    assert delete is None and isinstance(patch, NotFound)
    assert _count(ctx, "SELECT count(*) FROM alert_channels") == 0


@pytest.mark.parametrize("how", ["create", "move"])
def test_a_rule_on_a_flow_deleted_meanwhile_is_refused_and_left_nowhere(ctx: Context, how: str) -> None:
    """The flow was checked against the directory before the write was queued: a flow delete
    committed first (or in the same group) took the flow's rules, and the new rule went in after
    it, listed for ever for a flow that no longer exists. Refused as an unknown flow_id is, had
    the delete come before the check (a 422 naming it)."""
    from analytics.flows import registry as flows

    setup = setup_flows(ctx)
    doomed = setup.flows["a"]
    kept = make_rule(ctx, flow_id=setup.flows["b"])
    form = {"name": "r", "metric": "failure_rate", "flow_id": doomed, "window": 60, "threshold": 0.5}
    write = {
        "create": lambda: service.create_rule(ctx, OWNER, RuleCreate(**form)),
        "move": lambda: service.update_rule(ctx, OWNER, kept.id, RuleUpdate(flow_id=doomed)),
    }[how]
    delete, made = in_one_commit(ctx, lambda: flows.delete_flow(ctx, OWNER, doomed), write)
    assert delete is None and isinstance(made, InvalidInput) and made.field == "flow_id"
    assert made.detail == f"flow_id: there is no flow {doomed!r}"
    assert _count(ctx, f"SELECT count(*) FROM alert_rules WHERE flow_id = '{doomed}'") == 0
    assert _count(ctx, "SELECT count(*) FROM alert_rules") == 1  # the kept rule, unmoved
