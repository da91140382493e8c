"""Builders shared by the tests: runs shaped like the real client's, tokens, a seeded world."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from analytics.access import users
from analytics.access.auth import create_token
from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest

SECRET = "test-secret-for-flowhistory-0123456789abcdef"

# The callers library tests act as: one definition each (ROOT is an admin no user row backs).
ADMIN = Viewer("admin", "admin")
ROOT = Viewer("root", "admin")
OWNER = Viewer("owner")
READER = Viewer("reader")
WRITER = Viewer("writer")
STRANGER = Viewer("stranger")
OTHER = Viewer("other")


def make_execution(flow_id: str, **overrides: Any) -> dict[str, Any]:
    """A run as the editor sends it: a character-exploded text result, outputs == node_results."""
    text = overrides.pop("text", "Hi there")
    node = {str(i): ch for i, ch in enumerate(text)}
    node.update({"label": "Model", "modelId": "gpt-4o-mini"})
    node_results = {
        "input_1739905519876_a1b2c3d4e": {"value": "hello"},
        "model_1739905519876_k3j9x2abq": node,
    }
    run: dict[str, Any] = {
        "flow_id": flow_id,
        "status": "success",
        "inputs": {"prompt": "hello", "files": []},
        "outputs": node_results,
        "node_results": node_results,
        "errors": None,
        "execution_time": 1234,
    }
    run.update(overrides)
    return run


def bearer(user_id: str, *, expires_in: int | None = None, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(secret, user_id, expires_in=expires_in)}"}


USERS = {
    "admin": "admin",
    "owner": "user",
    "reader": "user",
    "writer": "user",
    "grouped": "user",
    "stranger": "user",
    "pending": "pending",
}


@dataclass
class World:
    """Users of every kind and three flows: shared (grants), public (null), private ({})."""

    client: TestClient
    ctx: Context
    shared: str
    public: str
    private: str

    def h(self, user: str) -> dict[str, str]:
        return bearer(user)

    def post_run(self, user: str, flow_id: str, **overrides: Any) -> dict[str, Any]:
        r = self.client.post(
            f"/api/v1/flows/{flow_id}/executions",
            json=make_execution(flow_id, **overrides),
            headers=self.h(user),
        )
        assert r.status_code == 200, r.text
        return r.json()


def build_world(client: TestClient) -> World:
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    for uid, role in USERS.items():
        if ctx.directory.user(uid) is None:
            users.create_user(ctx, uid, role=role)
        elif ctx.directory.user(uid).role != role:  # type: ignore[union-attr]
            users.set_role(ctx, uid, role)
    group = users.create_group(ctx, "readers", user_ids=["grouped"])
    owner = Viewer("owner", "user")
    shared = flows.create_flow(
        ctx,
        owner,
        name="shared",
        nodes=[{"id": "model_1"}],
        edges=[],
        access_control={
            "read": {"user_ids": ["reader"], "group_ids": [group.id]},
            "write": {"user_ids": ["writer"], "group_ids": []},
        },
    )
    public = flows.create_flow(ctx, owner, name="public", nodes=[], edges=[], access_control=None)
    private = flows.create_flow(ctx, owner, name="private", nodes=[], edges=[], access_control={})
    return World(client, ctx, shared.id, public.id, private.id)


def open_world(folder: Path) -> Iterator[World]:
    """A seeded world on its own store, for module-scoped fixtures; a 500 is an answer, not a raise."""
    from api.app import create_app  # the app imports analytics only; keep factories importable alone

    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield build_world(client)


def headers(user: str) -> dict[str, str]:
    """A user's bearer header; "anonymous" sends none."""
    return {} if user == "anonymous" else bearer(user)


def fresh_flow(w: World, kind: str) -> str:
    """A new flow owned by `owner` with exactly the access control of the world's flow of `kind`."""
    acl = w.ctx.directory.flow(getattr(w, kind))
    assert acl is not None
    flow = flows.create_flow(
        w.ctx, Viewer("owner"), name=f"{kind}-cell", nodes=[], edges=[], access_control=acl.access_control
    )
    return flow.id


def save_run(w: World, flow_id: str, user_id: str = "owner", **overrides: Any) -> str:
    """Store a run as `user_id` saved it (an admin import, so any user, even pending, can own one)."""
    admin = Viewer("admin", "admin")
    [result] = ingest.save_executions(w.ctx, admin, [make_execution(flow_id, user_id=user_id, **overrides)])
    assert result.status == "stored" and result.id is not None, result
    return result.id
