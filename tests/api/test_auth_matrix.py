"""Who gets what, on every route: the auth matrix, JWT edge cases, cookies, API keys, row visibility.

The matrix runs on one app per module; every cell builds the flow, runs, users or keys it acts
on, so cells never depend on each other. Cells that change something also check that the change
happened exactly when the answer was 200 (a 403 that still deleted would be a silent leak).

Every test runs twice: in standalone mode, and in Open WebUI mode (issue 12) over a SQLite file
with the same world (users, the group, flows with the same access_control) made in Open WebUI's
tables. There flow, user and group administration is Open WebUI's: those routes answer 409 to
whoever passed authentication and the route's role check, and change nothing. The E1-E6 part of
the matrix also runs on a real PostgreSQL.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from analytics.access import users
from analytics.core.config import Settings
from api.app import create_app
from tests.factories import (
    SECRET,
    World,
    bearer,
    fresh_flow,
    headers,
    make_execution,
    open_world,
    save_run,
)

VERIFIED = ("admin", "owner", "reader", "writer", "grouped", "stranger")
CALLERS = (*VERIFIED, "pending", "anonymous")
KINDS = ("shared", "public", "private")
READERS = {
    "shared": {"admin", "owner", "reader", "writer", "grouped"},
    "public": set(VERIFIED),
    "private": {"admin", "owner"},
}
WRITERS = {
    "shared": {"admin", "owner", "writer"},
    "public": {"admin", "owner"},
    "private": {"admin", "owner"},
}
OWNERS = {"admin", "owner"}


@pytest.fixture(scope="module", params=["standalone", "sqlite"])
def mworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from open_world(tmp_path_factory.mktemp(f"matrix-{request.param}"), request.param)


@pytest.fixture(scope="module")
def pgworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same world in Open WebUI's tables on a real PostgreSQL."""
    postgres = request.getfixturevalue("postgres")
    yield from open_world(tmp_path_factory.mktemp("matrix-postgresql"), "postgresql", postgres)


def count_runs(w: World, flow_id: str) -> int:
    return w.ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [flow_id]).fetchall()
    )[0][0]


def run_exists(w: World, execution_id: str) -> bool:
    rows = w.ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM executions WHERE id = ?", [execution_id]).fetchall()
    )
    return rows[0][0] == 1


# Routes that change what Open WebUI owns: 409 "managed by Open WebUI" in that mode.
MANAGED_FLOW_ROUTES = {"flow update", "flow delete", "flow duplicate"}
MANAGED_USER_ROUTES = {
    "flows create",
    "users create",
    "users update",
    "groups list",
    "groups create",
    "groups members",
}


def expected_status(level: str, kind: str, user: str, managed: bool = False) -> int:
    if user in ("pending", "anonymous"):
        return 401
    if managed:
        return 409
    allowed = {"read": READERS[kind], "write": WRITERS[kind], "owner": OWNERS}[level]
    return 200 if user in allowed else 403


# A flow route: (level, request(world, flow_id, user) -> (response, effect-happened check or None)).
Effect = Callable[[], bool] | None
FlowCall = Callable[[World, str, str], tuple[Response, Effect]]


def _e1(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    before = count_runs(w, fid)
    r = w.client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=headers(user))
    return r, lambda: count_runs(w, fid) == before + 1


def _e2(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(f"/api/v1/flows/{fid}/executions?page=1", headers=headers(user)), None


def _e3(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=headers(user)), None


def _e4(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    # the caller's own run, so row visibility does not hide it: this cell tests flow access only
    run = save_run(w, fid, user_id="owner" if user == "anonymous" else user)
    return w.client.get(f"/api/v1/flows/{fid}/executions/{run}", headers=headers(user)), None


def _e5(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    run = save_run(w, fid)
    r = w.client.delete(f"/api/v1/flows/{fid}/executions/{run}", headers=headers(user))
    return r, lambda: not run_exists(w, run)


def _e6(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    save_run(w, fid)
    save_run(w, fid, user_id="reader")
    r = w.client.delete(f"/api/v1/flows/{fid}/executions", headers=headers(user))
    return r, lambda: count_runs(w, fid) == 0


def _cursor_list(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(f"/api/v1/flows/{fid}/executions/list?limit=10", headers=headers(user)), None


def _cleanup(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    for _ in range(3):
        save_run(w, fid)
    r = w.client.post(f"/api/v1/flows/{fid}/executions/cleanup?keep=1", headers=headers(user))
    return r, lambda: count_runs(w, fid) == 1


def _flow_get(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(f"/api/v1/flows/{fid}", headers=headers(user)), None


def _flow_update(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    r = w.client.post(f"/api/v1/flows/{fid}", json={"name": "renamed"}, headers=headers(user))
    return (
        r,
        lambda: w.client.get(f"/api/v1/flows/{fid}", headers=bearer("admin")).json()["name"] == "renamed",
    )


def _flow_delete(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    r = w.client.delete(f"/api/v1/flows/{fid}", headers=headers(user))
    return r, lambda: w.ctx.directory.flow(fid) is None


def _duplicate(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.post(f"/api/v1/flows/{fid}/duplicate", headers=headers(user)), None


def _export(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(f"/api/v1/flows/{fid}/export", headers=headers(user)), None


FLOW_ROUTES: dict[str, tuple[str, FlowCall]] = {
    "E1 save": ("read", _e1),
    "E2 list page": ("read", _e2),
    "E3 stats": ("read", _e3),
    "E4 detail": ("read", _e4),
    "E5 delete one": ("write", _e5),
    "E6 delete all": ("write", _e6),
    "cursor list": ("read", _cursor_list),
    "cleanup": ("write", _cleanup),
    "flow get": ("read", _flow_get),
    "flow update": ("write", _flow_update),
    "flow delete": ("owner", _flow_delete),
    "flow duplicate": ("read", _duplicate),
    "flow export": ("read", _export),
}


def check_flow_cell(w: World, route: str, kind: str, user: str) -> None:
    level, call = FLOW_ROUTES[route]
    fid = fresh_flow(w, kind)
    r, effect = call(w, fid, user)
    want = expected_status(level, kind, user, w.webui is not None and route in MANAGED_FLOW_ROUTES)
    assert r.status_code == want, (w.mode, route, kind, user, r.text)
    if want == 409:
        assert "managed by Open WebUI" in r.json()["detail"]
    assert isinstance(r.json(), dict | list | bool)
    if want != 200:
        assert isinstance(r.json()["detail"], str)
    if want == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if effect is not None:
        assert effect() == (want == 200), f"{route}: the change happened={not effect()} on {want}"


@pytest.mark.parametrize("user", CALLERS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("route", list(FLOW_ROUTES))
def test_flow_route_matrix(mworld: World, route: str, kind: str, user: str) -> None:
    check_flow_cell(mworld, route, kind, user)


@pytest.mark.parametrize("user", CALLERS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("route", [r for r in FLOW_ROUTES if r.startswith("E")])
def test_flow_route_matrix_on_postgresql(pgworld: World, route: str, kind: str, user: str) -> None:
    """E1-E6 with Open WebUI's users, groups and flows read from a real PostgreSQL."""
    check_flow_cell(pgworld, route, kind, user)


@pytest.mark.parametrize("user", CALLERS)
@pytest.mark.parametrize("kind", KINDS)
def test_batch_matrix(mworld: World, kind: str, user: str) -> None:
    """Batch answers 200 to every verified caller; each item is stored only where they may read."""
    fid = fresh_flow(mworld, kind)
    r = mworld.client.post("/api/v1/executions/batch", json=[make_execution(fid)], headers=headers(user))
    if user in ("pending", "anonymous"):
        assert r.status_code == 401, r.text
        assert count_runs(mworld, fid) == 0
        return
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    if user in READERS[kind]:
        assert item["status"] == "stored"
        assert count_runs(mworld, fid) == 1
    else:
        assert item["status"] == "refused"
        assert "permission" in item["detail"]
        assert count_runs(mworld, fid) == 0


# Routes that are not about one flow: (access, request(world, user) -> (response, effect)).
UserCall = Callable[[World, str], tuple[Response, Effect]]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _flows_list(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/flows/", headers=headers(user)), None


def _flows_accessible(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/flows/accessible", headers=headers(user)), None


def _flows_create(w: World, user: str) -> tuple[Response, Effect]:
    name = _unique("created")
    before = len(w.ctx.directory.flows())
    r = w.client.post(
        "/api/v1/flows/create", json={"name": name, "nodes": [], "edges": []}, headers=headers(user)
    )
    return r, lambda: len(w.ctx.directory.flows()) == before + 1


def _me(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/users/me", headers=headers(user)), None


def _users_list(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/users", headers=headers(user)), None


def _users_create(w: World, user: str) -> tuple[Response, Effect]:
    uid = _unique("made")
    r = w.client.post("/api/v1/users", json={"id": uid, "role": "admin"}, headers=headers(user))
    return r, lambda: w.ctx.directory.user(uid) is not None


def _users_update(w: World, user: str) -> tuple[Response, Effect]:
    uid = w.add_user(_unique("target"))
    r = w.client.patch(f"/api/v1/users/{uid}", json={"role": "admin"}, headers=headers(user))
    return r, lambda: w.ctx.directory.user(uid).role == "admin"  # type: ignore[union-attr]


def _keys_list(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/keys", headers=headers(user)), None


def _keys_create(w: World, user: str) -> tuple[Response, Effect]:
    before = len(users.list_api_keys(w.ctx, user_id="stranger"))
    r = w.client.post("/api/v1/keys", json={"user_id": "stranger"}, headers=headers(user))
    return r, lambda: len(users.list_api_keys(w.ctx, user_id="stranger")) == before + 1


def _keys_revoke(w: World, user: str) -> tuple[Response, Effect]:
    key, record = users.create_api_key(w.ctx, "owner", name="to-revoke")
    r = w.client.delete(f"/api/v1/keys/{record.id}", headers=headers(user))
    return (
        r,
        lambda: (
            w.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        ),
    )


def _groups_list(w: World, user: str) -> tuple[Response, Effect]:
    return w.client.get("/api/v1/groups", headers=headers(user)), None


def _groups_create(w: World, user: str) -> tuple[Response, Effect]:
    name = _unique("group")
    before = len(w.ctx.directory.groups_of("stranger"))
    r = w.client.post("/api/v1/groups", json={"name": name, "user_ids": ["stranger"]}, headers=headers(user))
    return r, lambda: len(w.ctx.directory.groups_of("stranger")) == before + 1


def _groups_members(w: World, user: str) -> tuple[Response, Effect]:
    group = w.add_group(_unique("group"))
    r = w.client.put(
        f"/api/v1/groups/{group}/members", json={"user_ids": ["stranger"]}, headers=headers(user)
    )
    return r, lambda: group in w.ctx.directory.groups_of("stranger")


USER_ROUTES: dict[str, tuple[str, UserCall]] = {
    "flows list": ("verified", _flows_list),
    "flows accessible": ("verified", _flows_accessible),
    "flows create": ("verified", _flows_create),
    "users me": ("verified", _me),
    "users list": ("admin", _users_list),
    "users create": ("admin", _users_create),
    "users update": ("admin", _users_update),
    "keys list": ("admin", _keys_list),
    "keys create": ("admin", _keys_create),
    "keys revoke": ("admin", _keys_revoke),
    "groups list": ("admin", _groups_list),
    "groups create": ("admin", _groups_create),
    "groups members": ("admin", _groups_members),
}


@pytest.mark.parametrize("user", CALLERS)
@pytest.mark.parametrize("route", list(USER_ROUTES))
def test_user_route_matrix(mworld: World, route: str, user: str) -> None:
    level, call = USER_ROUTES[route]
    r, effect = call(mworld, user)
    if user in ("pending", "anonymous"):
        want = 401
    elif level == "admin" and user != "admin":
        want = 403
    elif mworld.webui is not None and route in MANAGED_USER_ROUTES:
        want = 409
    else:
        want = 200
    assert r.status_code == want, (mworld.mode, route, user, r.text)
    if want == 409:
        assert "managed by Open WebUI" in r.json()["detail"]
    if want != 200:
        assert isinstance(r.json()["detail"], str)
    if want == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if effect is not None:
        assert effect() == (want == 200), route


@pytest.mark.parametrize("user", CALLERS)
def test_health_needs_no_credentials(mworld: World, user: str) -> None:
    r = mworld.client.get("/health", headers=headers(user))
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_me_answers_the_caller(mworld: World) -> None:
    for user in VERIFIED:
        r = mworld.client.get("/api/v1/users/me", headers=bearer(user))
        assert r.json()["id"] == user
        assert r.json()["role"] == ("admin" if user == "admin" else "user")


def test_401_comes_before_404_for_unknown_flows(mworld: World) -> None:
    missing = str(uuid.uuid4())
    for user in ("pending", "anonymous"):
        r = mworld.client.get(f"/api/v1/flows/{missing}/executions", headers=headers(user))
        assert r.status_code == 401, r.text


# --- JWT edge cases ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    header = _b64(orjson.dumps({"alg": alg, "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(claims))}."


BAD_TOKENS: dict[str, str] = {
    "alg none": _unsigned({"id": "owner"}),
    "alg none for a new user": _unsigned({"id": "mallory"}),
    "alg NONE": _unsigned({"id": "owner"}, alg="NONE"),
    "wrong secret": jwt.encode({"id": "owner"}, "not-the-secret-0123456789abcdef0123", algorithm="HS256"),
    "expired": jwt.encode({"id": "owner", "exp": 1_000_000}, SECRET, algorithm="HS256"),
    "exp not a number": jwt.encode({"id": "owner", "exp": "soon"}, SECRET, algorithm="HS256"),
    "HS512": jwt.encode({"id": "owner"}, SECRET, algorithm="HS512"),
    "missing id": jwt.encode({"sub": "owner"}, SECRET, algorithm="HS256"),
    "empty id": jwt.encode({"id": ""}, SECRET, algorithm="HS256"),
    "int id": jwt.encode({"id": 5}, SECRET, algorithm="HS256"),
    "null id": jwt.encode({"id": None}, SECRET, algorithm="HS256"),
    "list id": jwt.encode({"id": ["owner"]}, SECRET, algorithm="HS256"),
    "object id": jwt.encode({"id": {"id": "owner"}}, SECRET, algorithm="HS256"),
    "malformed": "not-a-jwt",
    "two segments": "abc.def",
    "garbage segments": "a.b.c",
    "signature stripped": jwt.encode({"id": "owner"}, SECRET, algorithm="HS256").rsplit(".", 1)[0] + ".",
    "tampered claims": (
        lambda t: f"{t.split('.')[0]}.{_b64(orjson.dumps({'id': 'admin'}))}.{t.split('.')[2]}"
    )(jwt.encode({"id": "owner"}, SECRET, algorithm="HS256")),
    "unknown api key": "sk-" + "0" * 32,
    "api key shape wrong": "sk-nothex",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_bad_jwt_gets_401(mworld: World, name: str) -> None:
    r = mworld.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {BAD_TOKENS[name]}"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert mworld.ctx.directory.user("mallory") is None  # a refused token never creates its user
    # and it reaches no flow either
    r = mworld.client.get(
        f"/api/v1/flows/{mworld.public}/executions", headers={"Authorization": f"Bearer {BAD_TOKENS[name]}"}
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "value", ["", "Bearer", "Bearer ", "Basic b3duZXI6cHc=", "Token " + jwt.encode({"id": "owner"}, SECRET)]
)
def test_other_authorization_headers_get_401(mworld: World, value: str) -> None:
    r = mworld.client.get("/api/v1/users/me", headers={"Authorization": value})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert isinstance(r.json()["detail"], str)


def test_valid_tokens_with_and_without_exp(mworld: World) -> None:
    assert mworld.client.get("/api/v1/users/me", headers=bearer("owner")).json()["id"] == "owner"
    r = mworld.client.get("/api/v1/users/me", headers=bearer("owner", expires_in=3600))
    assert r.status_code == 200 and r.json()["id"] == "owner"
    r = mworld.client.get("/api/v1/users/me", headers=bearer("owner", expires_in=-60))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"].lower()


def test_token_cookie_works_like_the_header(mworld: World) -> None:
    token = jwt.encode({"id": "owner"}, SECRET, algorithm="HS256")
    r = mworld.client.get("/api/v1/users/me", headers={"Cookie": f"token={token}"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "owner"
    r = mworld.client.get(f"/api/v1/flows/{mworld.private}/executions", headers={"Cookie": f"token={token}"})
    assert r.status_code == 200
    stranger = jwt.encode({"id": "stranger"}, SECRET, algorithm="HS256")
    r = mworld.client.get(f"/api/v1/flows/{mworld.private}", headers={"Cookie": f"token={stranger}"})
    assert r.status_code == 403
    pending = jwt.encode({"id": "pending"}, SECRET, algorithm="HS256")
    assert mworld.client.get("/api/v1/users/me", headers={"Cookie": f"token={pending}"}).status_code == 401
    for bad in (BAD_TOKENS["alg none"], BAD_TOKENS["wrong secret"], BAD_TOKENS["expired"]):
        r = mworld.client.get("/api/v1/users/me", headers={"Cookie": f"token={bad}"})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_lifecycle_and_storage(mworld: World) -> None:
    r = mworld.client.post("/api/v1/keys", json={"user_id": "owner", "name": "ci"}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("sk-") and len(key) == 35
    int(key[3:], 16)  # 32 hex characters
    assert created["user_id"] == "owner" and created["name"] == "ci"
    auth = {"Authorization": f"Bearer {key}"}

    r = mworld.client.get("/api/v1/users/me", headers=auth)
    assert r.status_code == 200 and r.json()["id"] == "owner"
    assert mworld.client.get(f"/api/v1/flows/{mworld.private}", headers=auth).status_code == 200
    assert (
        mworld.client.get("/api/v1/users", headers=auth).status_code == 403
    )  # the key is owner's, not admin's
    assert mworld.client.get("/api/v1/users/me", headers={"Cookie": f"token={key}"}).json()["id"] == "owner"

    listed = mworld.client.get("/api/v1/keys", headers=bearer("admin"))
    assert created["id"] in {k["id"] for k in listed.json()}
    assert key not in listed.text and key[3:] not in listed.text

    rows = mworld.ctx.store.read(lambda c: c.execute("SELECT * FROM api_keys").fetchall())
    assert rows
    stored = " ".join(str(v) for row in rows for v in row)
    assert key not in stored
    assert key[3:] not in stored  # not even the secret part
    assert key[3:].upper() not in stored.upper()

    r = mworld.client.delete(f"/api/v1/keys/{created['id']}", headers=bearer("admin"))
    assert r.status_code == 200 and r.json() is True
    r = mworld.client.get("/api/v1/users/me", headers=auth)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert isinstance(r.json()["detail"], str)
    assert mworld.client.delete(f"/api/v1/keys/{created['id']}", headers=bearer("admin")).status_code == 404


def test_api_key_of_a_user_made_pending_stops_working(mworld: World) -> None:
    uid = mworld.add_user(_unique("keyholder"))
    key = mworld.client.post("/api/v1/keys", json={"user_id": uid}, headers=bearer("admin")).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    assert mworld.client.get("/api/v1/users/me", headers=auth).status_code == 200
    if mworld.webui is None:
        r = mworld.client.patch(f"/api/v1/users/{uid}", json={"role": "pending"}, headers=bearer("admin"))
        assert r.status_code == 200
    else:  # Open WebUI makes the user pending
        mworld.set_role(uid, "pending")
    assert mworld.client.get("/api/v1/users/me", headers=auth).status_code == 401
    assert mworld.client.get("/api/v1/users/me", headers=bearer(uid)).status_code == 401


def test_key_for_unknown_user_is_404(mworld: World) -> None:
    r = mworld.client.post("/api/v1/keys", json={"user_id": "nobody-at-all"}, headers=bearer("admin"))
    assert r.status_code == 404
    assert isinstance(r.json()["detail"], str)


# --- auto-creation of users -------------------------------------------------------------------


def test_first_valid_token_creates_a_user(mworld: World) -> None:
    """Standalone only: in Open WebUI mode a valid token of a user it does not have is a 401."""
    uid = _unique("newcomer")
    assert mworld.ctx.directory.user(uid) is None
    r = mworld.client.get("/api/v1/users/me", headers=bearer(uid))
    if mworld.webui is not None:
        assert r.status_code == 401, r.text
        assert mworld.ctx.directory.user(uid) is None
        return
    assert r.status_code == 200, r.text
    assert r.json()["id"] == uid and r.json()["role"] == "user"
    listed = mworld.client.get("/api/v1/users", headers=bearer("admin")).json()
    assert {"id": uid, "role": "user"}.items() <= next(u for u in listed if u["id"] == uid).items()
    # a verified user like any other: public yes, private no, admin routes no
    assert mworld.client.get(f"/api/v1/flows/{mworld.public}", headers=bearer(uid)).status_code == 200
    assert mworld.client.get(f"/api/v1/flows/{mworld.private}", headers=bearer(uid)).status_code == 403
    assert mworld.client.get("/api/v1/users", headers=bearer(uid)).status_code == 403


def test_auto_create_off_refuses_unknown_users(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auto_create_users": False}))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/users/me", headers=bearer("newcomer"))
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert isinstance(r.json()["detail"], str)
        assert client.get("/api/v1/flows/", headers=bearer("newcomer")).status_code == 401
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        assert ctx.directory.user("newcomer") is None
        # known users still get in (the bootstrap admin exists)
        r = client.get("/api/v1/users", headers=bearer("admin"))
        assert r.status_code == 200
        assert "newcomer" not in {u["id"] for u in r.json()}


# --- row visibility ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seen(mworld: World) -> dict[str, Any]:
    """A shared flow and a public flow with runs by several users."""
    w = mworld
    shared = fresh_flow(w, "shared")
    public = fresh_flow(w, "public")
    runs: dict[str, dict[str, list[str]]] = {shared: {}, public: {}}
    plan = {
        shared: ["owner", "owner", "reader", "grouped", "writer", "reader"],
        public: ["owner", "stranger", "reader"],
    }
    for fid, savers in plan.items():
        for i, saver in enumerate(savers):
            r = w.client.post(
                f"/api/v1/flows/{fid}/executions",
                json=make_execution(
                    fid, execution_time=100 * (i + 1), status="error" if i % 2 else "success"
                ),
                headers=bearer(saver),
            )
            assert r.status_code == 200, r.text
            runs[fid].setdefault(saver, []).append(r.json()["id"])
    return {"shared": shared, "public": public, "runs": runs}


def _all(runs: dict[str, list[str]]) -> set[str]:
    return {i for ids in runs.values() for i in ids}


VISIBILITY = [
    ("shared", "reader", "own"),
    ("shared", "grouped", "own"),
    ("shared", "owner", "all"),
    ("shared", "writer", "all"),
    ("shared", "admin", "all"),
    ("public", "stranger", "own"),
    ("public", "reader", "own"),
    ("public", "grouped", "own"),
    ("public", "owner", "all"),
    ("public", "admin", "all"),
]


@pytest.mark.parametrize(("kind", "user", "scope"), VISIBILITY)
def test_row_visibility(mworld: World, seen: dict[str, Any], kind: str, user: str, scope: str) -> None:
    fid = seen[kind]
    runs = seen["runs"][fid]
    visible = _all(runs) if scope == "all" else set(runs.get(user, []))
    hidden = _all(runs) - visible
    h = bearer(user)

    listed = mworld.client.get(f"/api/v1/flows/{fid}/executions?page=1", headers=h).json()
    assert {row["id"] for row in listed} == visible
    assert len(listed) == len(visible)

    page = mworld.client.get(f"/api/v1/flows/{fid}/executions/list?limit=500", headers=h).json()
    assert {row["id"] for row in page["items"]} == visible
    assert page["total"] == len(visible)
    assert page["next_cursor"] is None

    # walk the cursor one row at a time: still only visible rows, and the total agrees
    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        body = mworld.client.get(f"/api/v1/flows/{fid}/executions/list", params=params, headers=h).json()
        assert body["total"] == len(visible)
        walked += [row["id"] for row in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert walked == [row["id"] for row in listed]

    stats = mworld.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=h).json()
    assert stats["total_executions"] == len(visible)
    assert stats["success_count"] + stats["error_count"] + stats["aborted_count"] == len(visible)
    if not visible:
        assert stats["avg_execution_time"] == 0.0
        assert stats["last_execution_at"] is None

    for run in visible:
        r = mworld.client.get(f"/api/v1/flows/{fid}/executions/{run}", headers=h)
        assert r.status_code == 200
        assert r.json()["id"] == run
    for run in hidden:
        r = mworld.client.get(f"/api/v1/flows/{fid}/executions/{run}", headers=h)
        assert r.status_code == 404, (user, run)
        assert r.json() == {"detail": "Execution not found"}


def test_reader_stats_count_only_their_runs(mworld: World, seen: dict[str, Any]) -> None:
    fid = seen["shared"]
    reader = mworld.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=bearer("reader")).json()
    # reader saved runs 3 (success, 300 ms) and 6 (error, 600 ms) of the plan
    assert reader["total_executions"] == 2
    assert reader["success_count"] == 1 and reader["error_count"] == 1
    assert reader["avg_execution_time"] == 450.0
    owner = mworld.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=bearer("owner")).json()
    assert owner["total_executions"] == 6
    assert owner["avg_execution_time"] == 350.0


def test_stranger_with_no_runs_sees_an_empty_public_history(mworld: World, seen: dict[str, Any]) -> None:
    fid = seen["public"]
    h = bearer("writer")  # writer has no grant on a public flow and saved nothing there
    assert mworld.client.get(f"/api/v1/flows/{fid}/executions", headers=h).json() == []
    page = mworld.client.get(f"/api/v1/flows/{fid}/executions/list", headers=h).json()
    assert page == {"items": [], "next_cursor": None, "total": 0}
    stats = mworld.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=h).json()
    assert stats == {
        "total_executions": 0,
        "success_count": 0,
        "error_count": 0,
        "aborted_count": 0,
        "avg_execution_time": 0.0,
        "last_execution_at": None,
    }
