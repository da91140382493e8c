"""What admins type about users, keys and groups follows rules: group members are user ids by the
users' own rule (no `..` segment, no \\, ? or #), a key's name holds no control characters, and
names, emails and descriptions are capped. Refused input is a 422 naming the field and changes
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import InvalidInput

UNADDRESSABLE = ["..", ".", "a/../bob", "x/%2e%2E/bob", "x?y", "a#b", "a\\b"]


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    users.create_user(ctx, "boss", role="admin")
    key, _ = users.create_api_key(ctx, "boss", name="t")
    return {"Authorization": f"Bearer {key}"}


def _names(r: Any, field: str) -> bool:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    if isinstance(detail, list):
        return any(str(issue["loc"][-1]) == field for issue in detail)
    return field in str(detail)


# -- group members: the users' rule ----------------------------------------------------------------


@pytest.mark.parametrize("bad", UNADDRESSABLE)
def test_a_member_no_user_could_be_is_refused(ctx: Context, bad: str) -> None:
    """`users.create_user` refuses these ids (a URL resolves them away); a group took them."""
    with pytest.raises(InvalidInput):
        users.create_user(ctx, bad)
    group = users.create_group(ctx, "team", user_ids=["alice"])
    with pytest.raises(InvalidInput) as refused:
        users.set_group_members(ctx, group.id, ["bob", bad])
    assert refused.value.field == "user_ids" and "user_ids" in refused.value.detail
    with pytest.raises(InvalidInput) as refused:
        users.create_group(ctx, "other", user_ids=[bad])
    assert refused.value.field == "user_ids"
    assert [(g.name, g.user_ids) for g in users.list_groups(ctx)] == [("team", ("alice",))]


@pytest.mark.parametrize("bad", UNADDRESSABLE)
def test_over_http_such_a_member_is_a_422_naming_user_ids(
    client: TestClient, admin: dict[str, str], bad: str
) -> None:
    made = client.post("/api/v1/groups", json={"name": "team", "user_ids": ["alice"]}, headers=admin)
    assert made.status_code == 200, made.text
    r = client.post("/api/v1/groups", json={"name": "other", "user_ids": [bad]}, headers=admin)
    assert _names(r, "user_ids")
    r = client.put(f"/api/v1/groups/{made.json()['id']}/members", json={"user_ids": [bad]}, headers=admin)
    assert _names(r, "user_ids")
    assert [g["user_ids"] for g in client.get("/api/v1/groups", headers=admin).json()] == [["alice"]]


def test_members_with_slashes_and_dots_inside_a_segment_are_still_taken(ctx: Context) -> None:
    group = users.create_group(ctx, "team", user_ids=["a/b", "a.b", "..a", "x/..y"])
    assert group.user_ids == ("a/b", "a.b", "..a", "x/..y")


# -- API key names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ci\nforged-row", "nul\x00", "esc\x1b[31m", "tab\there", "a\u2028b"])
def test_a_key_name_with_control_characters_is_refused(
    client: TestClient, admin: dict[str, str], bad: str
) -> None:
    """A newline in a key's name forged a row in `flowhistory keys list`."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    before = users.list_api_keys(ctx)
    with pytest.raises(InvalidInput) as refused:
        users.create_api_key(ctx, "boss", name=bad)
    assert refused.value.field == "name"
    r = client.post("/api/v1/keys", json={"user_id": "boss", "name": bad}, headers=admin)
    assert _names(r, "name") and "control characters" in r.text
    assert users.list_api_keys(ctx) == before


# -- caps on free text -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "most"), [("name", 255), ("email", 255)])
def test_a_user_s_name_and_email_are_capped(
    client: TestClient, admin: dict[str, str], field: str, most: int
) -> None:
    """A 10 MB name was stored, and served on every GET /users."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    before = client.get("/api/v1/users", headers=admin).json()
    r = client.post("/api/v1/users", json={"id": "big", field: "x" * (most + 1)}, headers=admin)
    assert _names(r, field)
    with pytest.raises(InvalidInput) as refused:
        users.create_user(ctx, "big", **{field: "x" * (most + 1)})
    assert refused.value.field == field
    assert client.get("/api/v1/users", headers=admin).json() == before
    ok = client.post("/api/v1/users", json={"id": "big", field: "x" * most}, headers=admin)
    assert ok.status_code == 200 and ok.json()[field] == "x" * most, ok.text


def test_a_key_name_and_a_group_s_name_and_description_are_capped(
    client: TestClient, admin: dict[str, str]
) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    keys = users.list_api_keys(ctx)
    r = client.post("/api/v1/keys", json={"user_id": "boss", "name": "k" * 256}, headers=admin)
    assert _names(r, "name")
    with pytest.raises(InvalidInput):
        users.create_api_key(ctx, "boss", name="k" * 256)
    assert users.list_api_keys(ctx) == keys
    r = client.post("/api/v1/groups", json={"name": "g", "description": "d" * 2001}, headers=admin)
    assert _names(r, "description")
    with pytest.raises(InvalidInput) as refused:
        users.create_group(ctx, "g", description="d" * 2001)
    assert refused.value.field == "description"
    assert client.get("/api/v1/groups", headers=admin).json() == []
    ok = client.post("/api/v1/groups", json={"name": "g", "description": "d" * 2000}, headers=admin)
    assert ok.status_code == 200 and ok.json()["description"] == "d" * 2000, ok.text
