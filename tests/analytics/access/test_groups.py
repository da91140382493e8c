"""Groups: members are user ids by the users' own rule; refused input changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import InvalidInput


@pytest.mark.parametrize("bad", ["", "ghost\x01", "x\ny", "a\u2028b", "u" * 256])
def test_a_member_that_is_not_a_user_id_is_refused_and_nothing_changes(ctx: Context, bad: str) -> None:
    group = users.create_group(ctx, "team", user_ids=["alice"])
    with pytest.raises(InvalidInput) as refused:
        users.set_group_members(ctx, group.id, ["bob", bad])
    assert refused.value.field == "user_ids"
    with pytest.raises(InvalidInput):
        users.create_group(ctx, "other", user_ids=[bad])
    assert [(g.name, g.user_ids) for g in users.list_groups(ctx)] == [("team", ("alice",))]


def test_a_member_not_seen_yet_gets_the_grants_when_they_come(ctx: Context) -> None:
    group = users.create_group(ctx, "team", user_ids=["nobody-yet"])
    users.ensure_user(ctx, "nobody-yet")  # their first sign-in
    assert ctx.directory.groups_of("nobody-yet") == {group.id}


@pytest.mark.parametrize("bad", ["", "  ", "tab\there", "nul\x00", "line\nbreak"])
def test_a_group_name_empty_or_with_control_characters_is_refused(ctx: Context, bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        users.create_group(ctx, bad)
    assert refused.value.field == "name"
    assert users.list_groups(ctx) == []


def test_over_http_a_bad_member_is_a_422_naming_user_ids(client: TestClient) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    users.create_user(ctx, "boss", role="admin")
    key, _ = users.create_api_key(ctx, "boss", name="t")
    admin = {"Authorization": f"Bearer {key}"}
    made = client.post("/api/v1/groups", json={"name": "team", "user_ids": ["alice"]}, headers=admin)
    assert made.status_code in (200, 201), made.text
    r = client.put(
        f"/api/v1/groups/{made.json()['id']}/members", json={"user_ids": ["ghost\u0001"]}, headers=admin
    )
    assert r.status_code == 422 and "user_ids" in r.text, r.text
    assert client.get("/api/v1/groups", headers=admin).json()[0]["user_ids"] == ["alice"]
