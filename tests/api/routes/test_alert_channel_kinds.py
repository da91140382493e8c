"""Channel kinds over HTTP: webhook stays the default, Slack and email are created, shown with
their kind, validated with a 422 naming the field, and tested; no answer carries a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from tests.analytics.alerts.test_channel_kinds import mailbox
from tests.factories import SECRET, World, bearer, build_world
from tests.factories.alerts import channel_settings
from tests.smtp_server import SMTP_PASSWORD, Mailbox

__all__ = ["mailbox"]  # the SMTP server fixture

CHANNELS = "/api/v1/alerts/channels"
HOOK_SECRET = "webhook-secret-0123456789"


@pytest.fixture
def settings(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Settings:
    return channel_settings(tmp_path, mailbox[1])


def post(client: TestClient, body: dict[str, Any], user: str = "owner") -> Any:
    return client.post(CHANNELS, json=body, headers=bearer(user))


def detail_field(r: Any) -> str:
    """The field a 422 names: a request-shape error's `loc`, or a checked one's `detail` prefix."""
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    return str(detail[0]["loc"][-1]) if isinstance(detail, list) else detail.split(":", 1)[0]


def test_kinds_are_created_listed_and_never_show_secrets(world: World, mailbox: tuple[Mailbox, int]) -> None:
    client = world.client
    hook = post(client, {"name": "hook", "url": "http://127.0.0.1:9/h", "secret": HOOK_SECRET})
    assert hook.status_code == 201 and hook.json()["kind"] == "webhook" and hook.json()["recipients"] is None
    chat = post(client, {"kind": "slack", "name": "chat", "url": "http://127.0.0.1:9/services/x"})
    assert chat.status_code == 201, chat.text
    assert (chat.json()["kind"], chat.json()["url"]) == ("slack", "http://127.0.0.1:9/services/x")
    mail = post(client, {"kind": "email", "name": "mail", "recipients": ["ops@example.com"]})
    assert mail.status_code == 201, mail.text
    assert (mail.json()["url"], mail.json()["recipients"]) == (None, ["ops@example.com"])
    listed = client.get(CHANNELS, headers=bearer("owner"))
    assert [c["kind"] for c in listed.json()] == ["webhook", "slack", "email"]
    test = client.post(f"{CHANNELS}/{mail.json()['id']}/test", headers=bearer("owner"))
    assert test.status_code == 200 and test.json()["ok"] is True and test.json()["status_code"] == 250
    assert test.json()["body"]["to"] == ["ops@example.com"]
    box, _ = mailbox
    assert [to for _, to, _ in box.got] == [["ops@example.com"]]
    patched = client.patch(
        f"{CHANNELS}/{mail.json()['id']}", json={"recipients": ["b@example.com"]}, headers=bearer("owner")
    )
    assert patched.status_code == 200 and patched.json()["recipients"] == ["b@example.com"]
    everything = [
        listed.text,
        test.text,
        patched.text,
        hook.text,
        chat.text,
        mail.text,
        client.get("/api/v1/alerts/deliveries", headers=bearer("owner")).text,
    ]
    for text in everything:
        assert HOOK_SECRET not in text and SMTP_PASSWORD not in text and '"secret"' not in text


BAD = [
    ({"kind": "email", "name": "x"}, "recipients"),
    ({"kind": "email", "name": "x", "recipients": ["not an address"]}, "recipients"),
    ({"kind": "email", "name": "x", "recipients": ["ops@example.com"], "secret": "s" * 16}, "secret"),
    ({"kind": "slack", "name": "x", "url": "http://hooks.example.com/x"}, "url"),  # https needed
    ({"kind": "slack", "name": "x", "url": "https://10.0.0.1/x"}, "url"),  # the egress guard
    ({"kind": "slack", "name": "x"}, "url"),
    ({"kind": "fax", "name": "x"}, "kind"),
    ({"name": "x", "url": "http://127.0.0.1:9/h"}, "secret"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f"{b.get('kind', 'webhook')}-{f}" for b, f in BAD])
def test_bad_channels_are_422_naming_the_field(world: World, body: dict[str, Any], field: str) -> None:
    assert detail_field(post(world.client, body)) == field
    assert world.client.get(CHANNELS, headers=bearer("owner")).json() == []  # nothing stored


def test_patch_checks_the_kind(world: World) -> None:
    client = world.client
    chat = post(client, {"kind": "slack", "name": "chat", "url": "http://127.0.0.1:9/x"}).json()
    for patch, field in (
        ({"secret": "s" * 16}, "secret"),
        ({"recipients": ["a@b.co"]}, "recipients"),
        ({"url": "http://hooks.example.com/x"}, "url"),
        ({"kind": "email"}, "kind"),
    ):
        r = client.patch(f"{CHANNELS}/{chat['id']}", json=patch, headers=bearer("owner"))
        assert detail_field(r) == field
    assert client.get(f"{CHANNELS}/{chat['id']}", headers=bearer("owner")).json() == chat  # unchanged


def test_email_needs_an_smtp_server(tmp_path: Path) -> None:
    plain = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET, port=0)
    with TestClient(create_app(plain)) as client:
        build_world(client)
        r = post(client, {"kind": "email", "name": "x", "recipients": ["ops@example.com"]})
        assert detail_field(r) == "kind" and "FLOWHISTORY_SMTP_HOST" in r.json()["detail"]
