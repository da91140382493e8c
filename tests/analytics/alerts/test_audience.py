"""A channel hears a flow's alerts only while its creator sees every run of the flow.

Alert values (value, runs, flow_id) are computed over every run, so they are for those who see
them all: admins, the owner, write-grantees (as rules are shown). Eve, an admin, made a channel
and a rule on alice's private flow; demoted to user she got a 403 on the flow and a 404 on the
rule, but her channel still received the rule's firing bodies and its delivery log showed them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.alerts import repository as repo
from analytics.alerts import service
from analytics.alerts.channels import ChannelCreate
from analytics.alerts.engine import AlertEngine
from analytics.alerts.silences import SilenceCreate
from analytics.core.context import Context
from analytics.flows import registry as flows
from tests.factories import ADMIN, OWNER
from tests.factories.alerts import Collect, Run, Setup, hour_ago_base, make_rule, save, setup_flows

EVE = Viewer("eve", "admin")


def at(minutes: int) -> datetime:
    return hour_ago_base() + timedelta(minutes=minutes)


def hook(ctx: Context, viewer: Viewer) -> str:
    form = ChannelCreate(name=f"{viewer.id}'s", url="http://127.0.0.1:9/hook", secret="s" * 16)
    return service.create_channel(ctx, viewer, form).id


@pytest.fixture
def s(ctx: Context) -> Setup:
    setup = setup_flows(ctx)
    users.create_user(ctx, "eve", role="admin")
    runs = [Run(setup.flows["b"], at(i), "error", 100, "", "llm_1", "model-a", "error", 5) for i in range(5)]
    save(ctx, runs)  # flow b: the owner's, private
    return setup


def test_a_demoted_admins_channel_no_longer_hears_a_private_flow(s: Setup, caplog: Any) -> None:
    ctx = s.ctx
    eve, owner, admin = hook(ctx, EVE), hook(ctx, OWNER), hook(ctx, ADMIN)
    rule = make_rule(ctx, EVE, flow_id=s.flows["b"], window="1h", channel_ids=[eve, owner, admin])
    users.set_role(ctx, "eve", "user")
    collect = Collect()
    with caplog.at_level("WARNING", logger="flowhistory.alerts"):
        out = AlertEngine(ctx, collect).evaluate(at(10))  # type: ignore[arg-type]
    assert sorted(n.channel_id for n in collect.sent) == sorted([owner, admin])
    assert out["notifications"] == 2 and out["transitions"] == 1
    outbox = ctx.store.read(lambda c: c.execute("SELECT channel_id FROM alert_outbox").fetchall())
    assert eve not in {r[0] for r in outbox}
    assert [r.message for r in caplog.records if "creator does not see" in r.message] != []
    assert {r.state.value for r in ctx.store.read(lambda c: repo.load_states(c, [rule.id])).values()} == {
        "FIRING"
    }


def test_a_silenced_notification_logs_no_body_for_a_demoted_admin(s: Setup) -> None:
    ctx = s.ctx
    eve, owner = hook(ctx, EVE), hook(ctx, OWNER)
    rule = make_rule(ctx, EVE, flow_id=s.flows["b"], window="1h", channel_ids=[eve, owner])
    form = SilenceCreate(rule_id=rule.id, duration=3600, comment="deploy")  # type: ignore[arg-type]
    service.create_silence(ctx, OWNER, form, now=at(5))
    users.set_role(ctx, "eve", "user")
    out = AlertEngine(ctx, Collect()).evaluate(at(10))  # type: ignore[arg-type]
    assert out["silenced"] == 1
    rows = ctx.store.read(lambda c: c.execute("SELECT channel_id FROM alert_deliveries").fetchall())
    assert [r[0] for r in rows] == [owner]
    assert service.list_deliveries(ctx, Viewer("eve"), channel_id=eve) == []


def test_a_write_grantee_hears_and_a_reader_does_not(s: Setup) -> None:
    """A reader sees only their own runs of the flow: not the values over all of them."""
    ctx = s.ctx
    users.create_user(ctx, "writer")
    flow = s.flows["a"]  # the owner's
    grants = {
        "read": {"user_ids": ["reader"], "group_ids": []},
        "write": {"user_ids": ["writer"], "group_ids": []},
    }
    flows.update_flow(ctx, OWNER, flow, {"access_control": grants})
    save(ctx, [Run(flow, at(i), "error", 100, "", "llm_1", "model-a", "error", 5) for i in range(5)])
    writer, reader = hook(ctx, Viewer("writer")), hook(ctx, Viewer("reader"))
    make_rule(ctx, ADMIN, flow_id=flow, window="1h", channel_ids=[writer, reader])
    collect = Collect()
    AlertEngine(ctx, collect).evaluate(at(10))  # type: ignore[arg-type]
    assert [n.channel_id for n in collect.sent] == [writer]


def test_a_pending_owners_and_write_grantees_channels_hear_nothing(s: Setup) -> None:
    """`pending` is how Open WebUI deactivates an account: every request of theirs is a 401, and
    their channels kept getting the values over every run of the flows they owned or could write."""
    ctx = s.ctx
    users.create_user(ctx, "writer")
    flow = s.flows["b"]  # the owner's, private
    flows.update_flow(
        ctx, OWNER, flow, {"access_control": {"write": {"user_ids": ["writer"], "group_ids": []}}}
    )
    owner, writer, admin = hook(ctx, OWNER), hook(ctx, Viewer("writer")), hook(ctx, ADMIN)
    make_rule(ctx, ADMIN, flow_id=flow, window="1h", channel_ids=[owner, writer, admin])
    users.set_role(ctx, OWNER.id, "pending")
    users.set_role(ctx, "writer", "pending")
    collect = Collect()
    AlertEngine(ctx, collect).evaluate(at(10))  # type: ignore[arg-type]
    assert [n.channel_id for n in collect.sent] == [admin]
    users.set_role(ctx, OWNER.id, "user")  # activated again: heard again
    collect = Collect()
    AlertEngine(ctx, collect).evaluate(at(10) + timedelta(hours=3))  # type: ignore[arg-type]
    assert sorted(n.channel_id for n in collect.sent) == sorted([owner, admin])
