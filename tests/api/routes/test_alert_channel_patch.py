"""A channel's PATCH and form take what they say: `enabled` a JSON boolean, no `null` for a field
that needs a value, a name that is not only spaces, recipients at a domain (not an address
literal). Each refusal is a 422 naming the field, and the channel is left as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analytics.core.config import Settings
from tests.analytics.alerts.test_channel_kinds import mailbox
from tests.api.routes.test_alert_channel_kinds import CHANNELS, HOOK_SECRET, detail_field, post
from tests.factories import World, bearer
from tests.factories.alerts import channel_settings
from tests.smtp_server import Mailbox

__all__ = ["mailbox"]  # the SMTP server fixture


@pytest.fixture
def settings(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Settings:
    return channel_settings(tmp_path, mailbox[1])


def _hook(world: World) -> dict[str, Any]:
    r = post(world.client, {"name": "hook", "url": "http://127.0.0.1:9/h", "secret": HOOK_SECRET})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _mail(world: World) -> dict[str, Any]:
    r = post(world.client, {"kind": "email", "name": "mail", "recipients": ["ops@example.com"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _patch(world: World, channel: dict[str, Any], body: dict[str, Any]) -> Any:
    return world.client.patch(f"{CHANNELS}/{channel['id']}", json=body, headers=bearer("owner"))


def _now(world: World, channel: dict[str, Any]) -> dict[str, Any]:
    return dict(world.client.get(f"{CHANNELS}/{channel['id']}", headers=bearer("owner")).json())


@pytest.mark.parametrize("value", ["off", "yes", "true", "false", 0, 1, "1"])
def test_enabled_is_a_json_boolean(world: World, value: Any) -> None:
    """pydantic's lax bool read "off" as false and 1 as true: a typo disabled a channel."""
    hook = _hook(world)
    assert detail_field(_patch(world, hook, {"enabled": value})) == "enabled"
    assert _now(world, hook) == hook
    off = _patch(world, hook, {"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False, off.text
    on = _patch(world, hook, {"enabled": True})
    assert on.status_code == 200 and on.json()["enabled"] is True, on.text


@pytest.mark.parametrize("field", ["name", "url", "secret", "recipients", "enabled"])
def test_a_null_is_a_422_naming_the_field_and_changes_nothing(world: World, field: str) -> None:
    """A null read as "no change" answered 200 (and moved updated_at) for a body that changed nothing."""
    for channel in (_hook(world), _mail(world)):
        r = _patch(world, channel, {field: None})
        assert detail_field(r) == field
        assert field in str(r.json()["detail"][0]["msg"]), r.text
        assert _now(world, channel) == channel  # updated_at too


@pytest.mark.parametrize("blank", ["   ", "\t", " \n "])
def test_a_channel_name_of_spaces_only_is_refused(world: World, blank: str) -> None:
    r = post(world.client, {"name": blank, "url": "http://127.0.0.1:9/h", "secret": HOOK_SECRET})
    assert detail_field(r) == "name" and "must not be empty" in r.text, r.text
    hook = _hook(world)
    r = _patch(world, hook, {"name": blank})
    assert detail_field(r) == "name" and "must not be empty" in r.text, r.text
    assert [c["id"] for c in world.client.get(CHANNELS, headers=bearer("owner")).json()] == [hook["id"]]
    assert _now(world, hook) == hook


@pytest.mark.parametrize(
    "address", ["root@[10.0.0.1]", "root@[127.0.0.1]", "ops@[IPv6:::1]", "root@localhost", "a@[b.example]"]
)
def test_an_address_literal_is_not_a_recipient(world: World, address: str) -> None:
    """As root@localhost is refused: mail to a host named by its address (the server's network)."""
    r = post(world.client, {"kind": "email", "name": "x", "recipients": ["ops@example.com", address]})
    assert detail_field(r) == "recipients", r.text
    assert world.client.get(CHANNELS, headers=bearer("owner")).json() == []
    mail = _mail(world)
    assert detail_field(_patch(world, mail, {"recipients": [address]})) == "recipients"
    assert _now(world, mail) == mail
