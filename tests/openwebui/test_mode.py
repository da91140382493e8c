"""Open WebUI mode: users, roles, keys, groups and flows come from Open WebUI's database.

Over both dialects (a SQLite file and a real PostgreSQL with Open WebUI's schema). Changes made
in Open WebUI must take effect within 2 s: each such check polls with that bound, no tighter.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.flows.registry import flow_version
from analytics.openwebui.sync import purge_orphans
from api.app import create_app
from tests.factories import SECRET, bearer, make_execution
from tests.openwebui.webui_db import WebUIDb

BOUND_S = 2.0  # the promise: a change in Open WebUI takes effect within 2 s
API_KEY = "sk-" + "a1" * 16


def within(bound: float, check: Callable[[], bool]) -> bool:
    """True as soon as `check` holds; False if it never did within `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


class Mode:
    def __init__(self, client: TestClient, db: WebUIDb) -> None:
        self.client = client
        self.db = db
        self.ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]

    def status(self, method: str, path: str, user: str | None = None, **kw: Any) -> int:
        headers = bearer(user) if user else kw.pop("headers", {})
        return self.client.request(method, path, headers=headers, **kw).status_code


@pytest.fixture
def mode(webui_db: WebUIDb, tmp_path: Path) -> Iterator[Mode]:
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice", "user", api_key=API_KEY)
    webui_db.add_user("bob", "user")
    webui_db.add_user("wait", "pending")
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        openwebui_db=webui_db.url,
        openwebui_orphan_grace_s=3600,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Mode(client, webui_db)


def stored_users(m: Mode) -> list[str]:
    return [r[0] for r in m.ctx.store.read(lambda c: c.execute("SELECT id FROM users").fetchall())]


class TestIdentity:
    def test_roles_as_open_webui_decides(self, mode: Mode) -> None:
        assert mode.status("GET", "/api/v1/users/me", "boss") == 200
        assert mode.client.get("/api/v1/users/me", headers=bearer("boss")).json()["role"] == "admin"
        assert mode.status("GET", "/api/v1/flows/", "alice") == 200
        assert mode.status("GET", "/api/v1/flows/", "wait") == 401
        assert mode.status("GET", "/api/v1/users", "boss") == 200
        assert mode.status("GET", "/api/v1/users", "alice") == 403

    @pytest.mark.parametrize(
        "role", [None, "", "guest", "Admin", "None"], ids=["null", "empty", "guest", "Admin", "None-text"]
    )
    def test_a_role_open_webui_does_not_admit_is_401(self, mode: Mode, role: str | None) -> None:
        """Open WebUI's get_verified_user admits `user` and `admin` only: any other role (NULL,
        '', one it does not know) is refused like `pending`, with every kind of credential."""
        fid = mode.db.add_flow("alice", access_control=None)  # public: anyone admitted sees it
        mode.db.add_user("odd", "user", api_key="sk-" + "c3" * 16)
        # setup, not the point: a worker's first poll can take longer than the bound under load
        assert within(60, lambda: mode.status("GET", f"/api/v1/flows/{fid}", "odd") == 200)
        r = mode.client.post("/api/v1/keys", json={"user_id": "odd", "name": "svc"}, headers=bearer("boss"))
        assert r.status_code == 200, r.text
        credentials = {
            "jwt": bearer("odd"),
            "open webui key": {"Authorization": "Bearer sk-" + "c3" * 16},
            "our key": {"Authorization": f"Bearer {r.json()['key']}"},
        }
        for headers in credentials.values():
            assert mode.client.get("/api/v1/users/me", headers=headers).status_code == 200
        mode.db.execute('UPDATE "user" SET role = ? WHERE id = ?', (role, "odd"))
        for kind, headers in credentials.items():

            def refused(h: dict[str, str] = headers) -> bool:
                return mode.client.get("/api/v1/users/me", headers=h).status_code == 401

            assert within(BOUND_S, refused), kind
            assert mode.client.get("/api/v1/flows/accessible", headers=headers).status_code == 401, kind
            run = mode.client.post(
                f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=headers
            )
            assert run.status_code == 401, (kind, run.text)
        assert run_count(mode, fid) == 0

    def test_unknown_user_is_401_and_not_created(self, mode: Mode) -> None:
        before = stored_users(mode)
        r = mode.client.get("/api/v1/flows/", headers=bearer("nobody"))
        assert r.status_code == 401 and "detail" in r.json()
        assert mode.ctx.directory.user("nobody") is None
        assert stored_users(mode) == before

    def test_role_change_and_deletion_take_effect_within_the_bound(self, mode: Mode) -> None:
        mode.db.set_role("alice", "pending")
        assert within(BOUND_S, lambda: mode.status("GET", "/api/v1/flows/", "alice") == 401)
        mode.db.set_role("wait", "user")
        assert within(BOUND_S, lambda: mode.status("GET", "/api/v1/flows/", "wait") == 200)
        mode.db.set_role("bob", "admin")
        assert within(BOUND_S, lambda: mode.status("GET", "/api/v1/users", "bob") == 200)
        mode.db.delete_user("bob")
        assert within(BOUND_S, lambda: mode.status("GET", "/api/v1/flows/", "bob") == 401)

    def test_open_webui_api_keys(self, mode: Mode) -> None:
        ok = {"Authorization": f"Bearer {API_KEY}"}
        assert mode.client.get("/api/v1/users/me", headers=ok).json()["id"] == "alice"
        wrong = {"Authorization": "Bearer sk-" + "b2" * 16}
        assert mode.client.get("/api/v1/flows/", headers=wrong).status_code == 401
        mode.db.execute('UPDATE "user" SET api_key = NULL WHERE id = ?', ("alice",))
        assert within(BOUND_S, lambda: mode.client.get("/api/v1/flows/", headers=ok).status_code == 401)

    def test_our_keys_serve_existing_users_only(self, mode: Mode) -> None:
        r = mode.client.post("/api/v1/keys", json={"user_id": "bob", "name": "svc"}, headers=bearer("boss"))
        assert r.status_code == 200, r.text
        key = {"Authorization": f"Bearer {r.json()['key']}"}
        assert mode.client.get("/api/v1/users/me", headers=key).json()["id"] == "bob"
        r = mode.client.post("/api/v1/keys", json={"user_id": "ghost"}, headers=bearer("boss"))
        assert r.status_code == 404
        mode.db.delete_user("bob")
        assert within(BOUND_S, lambda: mode.client.get("/api/v1/flows/", headers=key).status_code == 401)

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/v1/users", {"id": "new", "role": "user"}),
            ("PATCH", "/api/v1/users/alice", {"role": "admin"}),
            ("GET", "/api/v1/groups", None),
            ("POST", "/api/v1/groups", {"name": "g", "user_ids": []}),
            ("PUT", "/api/v1/groups/g1/members", {"user_ids": []}),
        ],
    )
    def test_users_and_groups_admin_is_409(self, mode: Mode, method: str, path: str, body: Any) -> None:
        r = mode.client.request(method, path, json=body, headers=bearer("boss"))
        assert r.status_code == 409, r.text
        assert "managed by Open WebUI" in r.json()["detail"]
        assert mode.ctx.directory.user("alice").role == "user"  # type: ignore[union-attr]


class TestGroupsAndFlows:
    def test_group_grants_through_user_ids(self, mode: Mode) -> None:
        mode.db.add_group("g1", ["alice"])
        fid = mode.db.add_flow("boss", access_control={"read": {"group_ids": ["g1"], "user_ids": []}})
        path = f"/api/v1/flows/{fid}/executions/stats"
        assert within(BOUND_S, lambda: mode.status("GET", path, "alice") == 200)
        assert mode.status("GET", path, "bob") == 403
        mode.db.set_members("g1", ["alice", "bob"])
        assert within(BOUND_S, lambda: mode.status("GET", path, "bob") == 200)
        mode.db.set_members("g1", [])
        assert within(BOUND_S, lambda: mode.status("GET", path, "alice") == 403)

    def test_flows_come_from_the_flow_table(self, mode: Mode) -> None:
        nodes = [{"id": "model_1", "type": "model"}]
        fid = mode.db.add_flow("alice", name="From WebUI", nodes=nodes, access_control={})
        assert within(BOUND_S, lambda: mode.status("GET", f"/api/v1/flows/{fid}", "alice") == 200)
        flow = mode.client.get(f"/api/v1/flows/{fid}", headers=bearer("alice")).json()
        assert (flow["name"], flow["user_id"], flow["nodes"], flow["meta"]) == (
            "From WebUI",
            "alice",
            nodes,
            {},
        )
        assert mode.status("GET", f"/api/v1/flows/{fid}", "bob") == 403  # private
        assert fid in {f["id"] for f in mode.client.get("/api/v1/flows/", headers=bearer("alice")).json()}
        run = mode.client.post(
            f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice")
        )
        assert run.status_code == 200, run.text
        first = run.json()["id"]
        assert mode.status("POST", f"/api/v1/flows/{fid}/executions", "bob", json=make_execution(fid)) == 403
        # the definition changes in Open WebUI: later runs carry the new version, earlier keep theirs
        new_nodes = [*nodes, {"id": "tool_2", "type": "tool"}]
        mode.db.update_flow(fid, nodes=new_nodes)
        new_version = flow_version(new_nodes, [])
        assert within(BOUND_S, lambda: mode.ctx.directory.flow(fid).version == new_version)  # type: ignore[union-attr]
        second = mode.client.post(
            f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice")
        ).json()["id"]

        def version(eid: str) -> str:
            r = mode.client.get(f"/api/v1/flows/{fid}/executions/{eid}", headers=bearer("alice"))
            return r.json()["flow_version"]

        assert version(first) == flow_version(nodes, [])
        assert version(second) == new_version

    def test_flow_crud_is_open_webuis(self, mode: Mode) -> None:
        fid = mode.db.add_flow("alice")
        assert within(BOUND_S, lambda: mode.ctx.directory.flow(fid) is not None)
        for method, path, body in [
            ("POST", "/api/v1/flows/create", {"name": "x"}),
            ("POST", "/api/v1/flows/import", {"name": "x"}),
            ("POST", f"/api/v1/flows/{fid}", {"name": "y"}),
            ("DELETE", f"/api/v1/flows/{fid}", None),
            ("POST", f"/api/v1/flows/{fid}/duplicate", None),
        ]:
            r = mode.client.request(method, path, json=body, headers=bearer("alice"))
            assert r.status_code == 409, (method, path, r.text)
        assert mode.status("GET", f"/api/v1/flows/{fid}/export", "alice") == 200
        assert mode.status("POST", f"/api/v1/flows/{fid}/execute", "alice") == 200


def run_count(m: Mode, fid: str) -> int:
    return m.ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [fid]).fetchall()
    )[0][0]


class TestGoneFlows:
    def test_runs_vanish_at_once_and_the_job_frees_them_after_the_grace(self, mode: Mode) -> None:
        fid = mode.db.add_flow("alice")
        keep = mode.db.add_flow("alice")
        assert within(BOUND_S, lambda: mode.ctx.directory.flow(keep) is not None)
        eids = [
            mode.client.post(
                f"/api/v1/flows/{f}/executions", json=make_execution(f), headers=bearer("alice")
            ).json()["id"]
            for f in (fid, fid, keep)
        ]
        mode.db.delete_flow(fid)
        for path in (
            f"/api/v1/flows/{fid}/executions",
            f"/api/v1/flows/{fid}/executions/stats",
            f"/api/v1/flows/{fid}/executions/{eids[0]}",
            f"/api/v1/flows/{fid}",
        ):
            assert within(BOUND_S, lambda p=path: mode.status("GET", p, "alice") == 404), path  # type: ignore[misc]
            assert mode.status("GET", path, "boss") == 404
        hits = mode.client.post("/api/v1/executions/search", json={}, headers=bearer("boss")).json()
        assert {h["id"] for h in hits["items"]} == {eids[2]}
        # within the grace the runs stay stored (the job only frees space)...
        assert purge_orphans(mode.ctx) == {"flows": 0, "runs": 0}
        assert run_count(mode, fid) == 2
        # ...after it they are deleted, and the other flow's run is untouched
        mode.ctx.settings.openwebui_orphan_grace_s = 0
        assert purge_orphans(mode.ctx) == {"flows": 1, "runs": 2}
        assert run_count(mode, fid) == 0 and run_count(mode, keep) == 1
        assert mode.status("GET", f"/api/v1/flows/{keep}/executions/{eids[2]}", "alice") == 200

    def test_an_open_webui_without_flows_purges_nothing(self, mode: Mode) -> None:
        """Pointed at a fresh Open WebUI database by mistake, every flow looks gone: after the
        grace the job would delete every run. It refuses, and says why."""
        fid = mode.db.add_flow("alice")
        assert within(BOUND_S, lambda: mode.ctx.directory.flow(fid) is not None)
        r = mode.client.post(
            f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice")
        )
        assert r.status_code == 200
        mode.db.delete_flow(fid)
        assert within(BOUND_S, lambda: mode.ctx.directory.flow(fid) is None)
        mode.ctx.settings.openwebui_orphan_grace_s = 0
        assert "no flows at all" in purge_orphans(mode.ctx)["skipped"]
        assert run_count(mode, fid) == 1
        # one flow back in Open WebUI: the gone one's runs go after the grace, as usual
        mode.db.add_flow("alice")
        assert within(BOUND_S, lambda: len(list(mode.ctx.directory.flows())) == 1)
        assert purge_orphans(mode.ctx) == {"flows": 1, "runs": 1}
        assert run_count(mode, fid) == 0

    def test_the_job_is_scheduled_in_this_mode(self, mode: Mode) -> None:
        names = [j["name"] for j in mode.client.get("/api/v1/jobs", headers=bearer("boss")).json()]
        assert "openwebui-orphans" in names


def test_open_webuis_database_is_not_written(webui_db: WebUIDb, tmp_path: Path) -> None:
    """The read-only connection refuses writes in both dialects."""
    from analytics.openwebui.db import WebUIDatabase

    webui_db.add_user("u1")
    ro = WebUIDatabase(webui_db.url)
    assert ro.rows('SELECT id FROM "user"') == [("u1",)]
    with pytest.raises(Exception, match=r"(?i)read.?only|readonly"):
        ro.rows(f"DELETE FROM \"user\" WHERE id = '{uuid.uuid4()}'")
    assert webui_db.execute('SELECT id FROM "user"') == [("u1",)]
    ro.close()


class TestApiKeysSetting:
    """Open WebUI accepts `user.api_key` only while its `auth.api_key.enable` is on (the newest
    `config` row; FLOWHISTORY_OPENWEBUI_API_KEYS when the config has no value). flowhistory's
    own keys do not depend on it."""

    def test_disabled_in_open_webuis_config(self, mode: Mode) -> None:
        theirs = {"Authorization": f"Bearer {API_KEY}"}
        r = mode.client.post("/api/v1/keys", json={"user_id": "alice"}, headers=bearer("boss"))
        ours = {"Authorization": f"Bearer {r.json()['key']}"}
        assert mode.client.get("/api/v1/users/me", headers=theirs).status_code == 200
        mode.db.save_config({"version": 0, "ui": {}, "auth": {"api_key": {"enable": False}}})
        assert within(BOUND_S, lambda: mode.client.get("/api/v1/users/me", headers=theirs).status_code == 401)
        assert mode.client.get("/api/v1/users/me", headers=ours).json()["id"] == "alice"
        mode.db.save_config({"version": 0, "ui": {}, "auth": {"api_key": {"enable": True}}})
        assert within(BOUND_S, lambda: mode.client.get("/api/v1/users/me", headers=theirs).status_code == 200)

    def test_endpoint_restrictions_in_open_webuis_config(self, mode: Mode) -> None:
        """With `auth.api_key.endpoint_restrictions` on, an Open WebUI key may call only the
        endpoints listed (and below them), as Open WebUI answers: 403 elsewhere; our keys and
        tokens are not restricted."""
        theirs = {"Authorization": f"Bearer {API_KEY}"}
        r = mode.client.post("/api/v1/keys", json={"user_id": "alice"}, headers=bearer("boss"))
        ours = {"Authorization": f"Bearer {r.json()['key']}"}
        restricted = {
            "enable": True,
            "endpoint_restrictions": True,
            "allowed_endpoints": "/api/v1/models, /api/v1/users",
        }
        mode.db.save_config({"version": 0, "ui": {}, "auth": {"api_key": restricted}})

        def refused() -> bool:
            return mode.client.get("/api/v1/flows/", headers=theirs).status_code == 403

        assert within(BOUND_S, refused)
        r = mode.client.get("/api/v1/flows/", headers=theirs)
        assert "may not call this endpoint" in r.json()["detail"]
        assert (
            mode.client.get("/api/v1/users/me", headers=theirs).json()["id"] == "alice"
        )  # below /api/v1/users
        assert mode.client.get("/api/v1/flows/", headers=ours).status_code == 200
        assert mode.client.get("/api/v1/flows/", headers=bearer("alice")).status_code == 200
        mode.db.save_config(
            {"version": 0, "ui": {}, "auth": {"api_key": {**restricted, "endpoint_restrictions": False}}}
        )
        assert within(BOUND_S, lambda: mode.client.get("/api/v1/flows/", headers=theirs).status_code == 200)

    def test_the_setting_when_the_config_says_nothing(self, webui_db: WebUIDb, tmp_path: Path) -> None:
        webui_db.add_user("alice", "user", api_key=API_KEY)
        webui_db.save_config({"version": 0, "ui": {}})  # no auth.api_key.enable: Open WebUI's env decides
        settings = Settings(
            db_path=tmp_path / "store.duckdb",
            webui_secret_key=SECRET,
            port=0,
            openwebui_db=webui_db.url,
            openwebui_api_keys=False,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {API_KEY}"})
            assert r.status_code == 401, r.text
            assert client.get("/api/v1/users/me", headers=bearer("alice")).status_code == 200


def test_the_mirrors_age_is_a_metric(mode: Mode) -> None:
    """Requests are served from the mirror while Open WebUI cannot be read: its age tells the
    operator when role changes and deletions stop taking effect."""
    import re

    text = mode.client.get("/metrics", headers=bearer("boss")).text
    found = re.search(r"^flowhistory_openwebui_mirror_age_seconds (\S+)$", text, re.M)
    assert found is not None, text
    assert 0 <= float(found.group(1)) < 30  # polled each second


def test_a_flows_first_run_saved_right_after_its_creation_in_open_webui_is_stored(
    webui_db: WebUIDb, tmp_path: Path
) -> None:
    """The client saves a run the moment its flow runs, which can be before the next poll: the
    run was a 404 and lost. A miss now reads Open WebUI at once (the poll here is 30 s)."""
    webui_db.add_user("alice", "user")
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        openwebui_db=webui_db.url,
        openwebui_poll_s=30,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        fid = webui_db.add_flow("alice")  # created in Open WebUI after the server's first read
        r = client.post(f"/api/v1/flows/{fid}/executions", json=make_execution(fid), headers=bearer("alice"))
        assert r.status_code == 200, r.text
        assert (
            client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("alice")).json()[0]["id"]
            == r.json()["id"]
        )
        # a flow Open WebUI does not have is still a 404, after that read
        r = client.post("/api/v1/flows/nope/executions", json=make_execution("nope"), headers=bearer("alice"))
        assert r.status_code == 404 and r.json()["detail"] == "Flow not found"


@pytest.mark.parametrize("shape", ["ndjson", "array", "one_by_one"])
def test_a_batch_for_a_flow_just_created_in_open_webui_is_stored(
    webui_db: WebUIDb, tmp_path: Path, shape: str
) -> None:
    """A single save read Open WebUI again on a miss; a batch refused the same runs "Flow not
    found" until the next poll. A batch reads it once too (the bulk path and the per-item one:
    a body of two array items, one of them unreadable by the bulk reader, goes one by one)."""
    webui_db.add_user("alice", "user")
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        openwebui_db=webui_db.url,
        openwebui_poll_s=30,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        fid = webui_db.add_flow("alice")  # after the server's first read
        runs = [make_execution(fid), make_execution("nope")]
        if shape == "ndjson":
            body = b"\n".join(orjson.dumps(r) for r in runs)
            headers = {**bearer("alice"), "Content-Type": "application/x-ndjson"}
        else:
            body = orjson.dumps(runs)
            if shape == "one_by_one":  # an exponent: the bulk reader leaves the array to the per-item path
                body = body.replace(
                    b'"execution_time":' + str(runs[1]["execution_time"]).encode(), b'"execution_time":1e2'
                )
            headers = {**bearer("alice"), "Content-Type": "application/json"}
            assert (b"1e2" in body) is (shape == "one_by_one")
        r = client.post("/api/v1/executions/batch", content=body, headers=headers)
        assert r.status_code == 200, r.text
        first, second = r.json()["items"]
        assert first["status"] == "stored", first
        assert second["status"] == "refused"
        listed = client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("alice")).json()
        assert [row["id"] for row in listed] == [first["id"]]
