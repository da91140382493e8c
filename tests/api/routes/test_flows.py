"""The flow registry endpoints as the client uses them (PEER_CONTRACT.md, "Flow endpoints")."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, World, bearer, build_world, make_execution

FLOW_FIELDS = {
    "id",
    "user_id",
    "name",
    "description",
    "nodes",
    "edges",
    "created_at",
    "updated_at",
    "meta",
    "access_control",
}


def get(w: World, fid: str, user: str = "owner") -> Any:
    r = w.client.get(f"/api/v1/flows/{fid}", headers=bearer(user))
    assert r.status_code == 200, r.text
    return r.json()


def ids(w: World, path: str, user: str) -> set[str]:
    r = w.client.get(path, headers=bearer(user))
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), list)
    return {f["id"] for f in r.json()}


def count(w: World, table: str, flow_id: str) -> int:
    return w.ctx.store.read(
        lambda c: c.execute(f"SELECT count(*) FROM {table} WHERE flow_id = ?", [flow_id]).fetchall()
    )[0][0]


class TestCreate:
    def test_answers_200_with_every_field(self, world: World) -> None:
        form = {
            "name": "Summarise",
            "description": "two nodes",
            "nodes": [{"id": "model_1739905519876_k3j9x2abq", "type": "model", "data": {"modelId": "gpt"}}],
            "edges": [{"id": "e1", "source": "input_1", "target": "model_1739905519876_k3j9x2abq"}],
            "access_control": {"read": {"group_ids": [], "user_ids": ["stranger"]}},
        }
        before = int(time.time())
        r = world.client.post("/api/v1/flows/create", json=form, headers=bearer("reader"))
        after = int(time.time())
        assert r.status_code == 200, r.text
        flow = r.json()
        assert set(flow) >= FLOW_FIELDS
        uuid.UUID(flow["id"])
        assert flow["user_id"] == "reader"
        for key in ("name", "description", "nodes", "edges", "access_control"):
            assert flow[key] == form[key], key
        assert isinstance(flow["created_at"], int) and isinstance(flow["updated_at"], int)
        assert before <= flow["created_at"] <= after + 1
        assert flow["updated_at"] == flow["created_at"]
        assert get(world, flow["id"], "reader") == flow
        # the grant works: stranger may read it, owner (of other flows) may not
        assert world.client.get(f"/api/v1/flows/{flow['id']}", headers=bearer("stranger")).status_code == 200
        assert world.client.get(f"/api/v1/flows/{flow['id']}", headers=bearer("owner")).status_code == 403

    def test_minimal_form_and_unknown_keys(self, world: World) -> None:
        r = world.client.post(
            "/api/v1/flows/create", json={"name": "bare", "colour": "red"}, headers=bearer("stranger")
        )
        assert r.status_code == 200, r.text
        flow = r.json()
        assert "colour" not in flow
        assert flow["nodes"] == [] and flow["edges"] == [] and flow["description"] is None
        assert flow["access_control"] is None  # omitted means public, as Open WebUI does

    @pytest.mark.parametrize(
        "form",
        [
            {},
            {"name": ""},
            {"name": 5},
            {"name": "x", "nodes": {}},
            {"name": "x", "edges": "e"},
            {"name": "x", "access_control": []},
            {"name": "x", "access_control": {"read": {"user_ids": "reader"}}},
            {"name": "x", "access_control": {"read": {"user_ids": [1]}}},
            {"name": "x", "access_control": {"owner": {}}},
        ],
    )
    def test_bad_forms_are_422_and_create_nothing(self, world: World, form: dict[str, Any]) -> None:
        before = ids(world, "/api/v1/flows/accessible", "admin")
        r = world.client.post("/api/v1/flows/create", json=form, headers=bearer("owner"))
        assert r.status_code == 422, r.text
        assert r.json()["detail"]
        assert ids(world, "/api/v1/flows/accessible", "admin") == before


@pytest.mark.parametrize(
    ("user", "owned_or_writable", "readable"),
    [
        ("admin", {"shared", "public", "private"}, {"shared", "public", "private"}),
        ("owner", {"shared", "public", "private"}, {"shared", "public", "private"}),
        ("writer", {"shared"}, {"shared", "public"}),
        ("reader", set(), {"shared", "public"}),
        ("grouped", set(), {"shared", "public"}),
        ("stranger", set(), {"public"}),
    ],
)
def test_list_vs_accessible(world: World, user: str, owned_or_writable: set[str], readable: set[str]) -> None:
    names = {getattr(world, k): k for k in ("shared", "public", "private")}
    assert {names[i] for i in ids(world, "/api/v1/flows/", user)} == owned_or_writable
    assert {names[i] for i in ids(world, "/api/v1/flows/accessible", user)} == readable
    # a flow the user creates shows in both
    mine = world.client.post("/api/v1/flows/create", json={"name": "mine"}, headers=bearer(user)).json()["id"]
    assert mine in ids(world, "/api/v1/flows/", user)
    assert mine in ids(world, "/api/v1/flows/accessible", user)


@pytest.mark.parametrize("path", ["/api/v1/flows/", "/api/v1/flows/accessible"])
def test_list_rows_are_the_flow_without_its_owner(world: World, path: str) -> None:
    """PEER_CONTRACT: list rows have the flow fields without `user_id`; the full flow has it."""
    rows = world.client.get(path, headers=bearer("owner")).json()
    assert rows
    for flow in rows:
        assert set(flow) == FLOW_FIELDS - {"user_id"}
        assert isinstance(flow["created_at"], int) and isinstance(flow["updated_at"], int)
        full = get(world, flow["id"])
        assert full["user_id"] == "owner" and flow == {k: v for k, v in full.items() if k != "user_id"}


class TestUpdate:
    def test_omitted_fields_stay(self, world: World) -> None:
        before = get(world, world.shared)
        r = world.client.post(
            f"/api/v1/flows/{world.shared}", json={"name": "renamed"}, headers=bearer("owner")
        )
        assert r.status_code == 200, r.text
        after = r.json()
        assert after["name"] == "renamed"
        for key in FLOW_FIELDS - {"name", "updated_at"}:
            assert after[key] == before[key], key
        assert after["updated_at"] >= before["updated_at"]
        assert get(world, world.shared) == after

    def test_each_field_alone(self, world: World) -> None:
        changes = {
            "description": "now described",
            "nodes": [{"id": "n1"}, {"id": "n2"}],
            "edges": [{"source": "n1", "target": "n2"}],
            "meta": {"tags": ["a"]},
        }
        for key, value in changes.items():
            before = get(world, world.shared)
            r = world.client.post(f"/api/v1/flows/{world.shared}", json={key: value}, headers=bearer("owner"))
            assert r.status_code == 200, r.text
            after = get(world, world.shared)
            assert after[key] == value
            for other in FLOW_FIELDS - {key, "updated_at"}:
                assert after[other] == before[other], (key, other)

    def test_empty_update_changes_nothing(self, world: World) -> None:
        before = get(world, world.private)
        r = world.client.post(f"/api/v1/flows/{world.private}", json={}, headers=bearer("owner"))
        assert r.status_code == 200
        after = get(world, world.private)
        assert {k: v for k, v in after.items() if k != "updated_at"} == {
            k: v for k, v in before.items() if k != "updated_at"
        }

    def test_null_name_nodes_edges_leave_them(self, world: World) -> None:
        before = get(world, world.shared)
        r = world.client.post(
            f"/api/v1/flows/{world.shared}",
            json={"name": None, "nodes": None, "edges": None},
            headers=bearer("owner"),
        )
        assert r.status_code == 200, r.text
        after = get(world, world.shared)
        assert (after["name"], after["nodes"], after["edges"]) == (
            before["name"],
            before["nodes"],
            before["edges"],
        )

    def test_explicit_null_access_control_makes_it_public(self, world: World) -> None:
        assert (
            world.client.get(f"/api/v1/flows/{world.private}", headers=bearer("stranger")).status_code == 403
        )
        r = world.client.post(
            f"/api/v1/flows/{world.private}", json={"access_control": None}, headers=bearer("owner")
        )
        assert r.status_code == 200, r.text
        assert r.json()["access_control"] is None
        assert (
            world.client.get(f"/api/v1/flows/{world.private}", headers=bearer("stranger")).status_code == 200
        )
        assert world.private in ids(world, "/api/v1/flows/accessible", "stranger")
        # public means read, not write
        r = world.client.post(
            f"/api/v1/flows/{world.private}", json={"name": "x"}, headers=bearer("stranger")
        )
        assert r.status_code == 403

    def test_owner_can_make_a_public_flow_private(self, world: World) -> None:
        r = world.client.post(
            f"/api/v1/flows/{world.public}", json={"access_control": {}}, headers=bearer("owner")
        )
        assert r.status_code == 200
        assert world.client.get(f"/api/v1/flows/{world.public}", headers=bearer("reader")).status_code == 403

    def test_admin_may_change_access_control(self, world: World) -> None:
        r = world.client.post(
            f"/api/v1/flows/{world.shared}", json={"access_control": {}}, headers=bearer("admin")
        )
        assert r.status_code == 200
        assert world.client.get(f"/api/v1/flows/{world.shared}", headers=bearer("reader")).status_code == 403

    def test_write_grantee_may_rename_but_not_change_access(self, world: World) -> None:
        r = world.client.post(
            f"/api/v1/flows/{world.shared}", json={"name": "by writer"}, headers=bearer("writer")
        )
        assert r.status_code == 200, r.text
        assert get(world, world.shared)["name"] == "by writer"
        assert get(world, world.shared)["user_id"] == "owner"  # editing does not take ownership

        before = get(world, world.shared)
        for change in (
            {"access_control": None},
            {"access_control": {}},
            {"access_control": {"write": {"user_ids": ["writer", "stranger"]}}},
            {"name": "sneaky", "access_control": {}},
        ):
            r = world.client.post(f"/api/v1/flows/{world.shared}", json=change, headers=bearer("writer"))
            assert r.status_code == 403, (change, r.text)
            assert isinstance(r.json()["detail"], str)
            assert get(world, world.shared) == before  # nothing of a refused update applies
        assert (
            world.client.get(f"/api/v1/flows/{world.shared}", headers=bearer("stranger")).status_code == 403
        )

    def test_write_grantee_may_send_access_control_back_unchanged(self, world: World) -> None:
        """The editor saves the flow whole: a 403 for an unchanged `access_control` refused
        every save by a write-grantee (the peer lets them change it)."""
        flow = get(world, world.shared)
        body = {k: flow[k] for k in ("name", "nodes", "edges", "meta", "access_control")}
        r = world.client.post(
            f"/api/v1/flows/{world.shared}", json={**body, "description": "saved"}, headers=bearer("writer")
        )
        assert r.status_code == 200, r.text
        assert r.json()["description"] == "saved" and r.json()["access_control"] == flow["access_control"]

    @pytest.mark.parametrize("user", ["reader", "grouped", "stranger"])
    def test_readers_may_not_update(self, world: World, user: str) -> None:
        before = get(world, world.shared)
        r = world.client.post(f"/api/v1/flows/{world.shared}", json={"name": "nope"}, headers=bearer(user))
        assert r.status_code == 403
        assert get(world, world.shared) == before

    def test_bad_access_control_is_422(self, world: World) -> None:
        before = get(world, world.shared)
        r = world.client.post(
            f"/api/v1/flows/{world.shared}", json={"access_control": {"read": 5}}, headers=bearer("owner")
        )
        assert r.status_code == 422
        assert "access_control" in r.json()["detail"]
        assert get(world, world.shared) == before


class TestDelete:
    def test_answers_true_and_deletes_its_executions(self, world: World) -> None:
        runs = [
            world.post_run("owner", world.shared)["id"],
            world.post_run("reader", world.shared)["id"],
            world.post_run("writer", world.shared, status="error")["id"],
        ]
        elsewhere = world.post_run("owner", world.public)["id"]
        assert count(world, "executions", world.shared) == 3
        assert count(world, "execution_nodes", world.shared) > 0

        r = world.client.delete(f"/api/v1/flows/{world.shared}", headers=bearer("owner"))
        assert r.status_code == 200, r.text
        assert r.json() is True

        for run in runs:
            r = world.client.get(f"/api/v1/flows/{world.shared}/executions/{run}", headers=bearer("admin"))
            assert r.status_code == 404
        assert count(world, "executions", world.shared) == 0
        assert count(world, "execution_nodes", world.shared) == 0
        for path in ("", "/export", "/executions", "/executions/stats", "/executions/list"):
            r = world.client.get(f"/api/v1/flows/{world.shared}{path}", headers=bearer("admin"))
            assert r.status_code == 404, path
            assert r.json() == {"detail": "Flow not found"}
        assert world.shared not in ids(world, "/api/v1/flows/", "owner")
        assert world.shared not in ids(world, "/api/v1/flows/accessible", "reader")
        # other flows keep theirs
        r = world.client.get(f"/api/v1/flows/{world.public}/executions/{elsewhere}", headers=bearer("owner"))
        assert r.status_code == 200
        assert count(world, "executions", world.public) == 1

    def test_admin_may_delete(self, world: World) -> None:
        world.post_run("owner", world.private)
        r = world.client.delete(f"/api/v1/flows/{world.private}", headers=bearer("admin"))
        assert r.status_code == 200 and r.json() is True
        assert count(world, "executions", world.private) == 0

    @pytest.mark.parametrize("user", ["writer", "reader", "grouped", "stranger"])
    def test_only_owner_or_admin(self, world: World, user: str) -> None:
        run = world.post_run("owner", world.shared)["id"]
        r = world.client.delete(f"/api/v1/flows/{world.shared}", headers=bearer(user))
        assert r.status_code == 403
        # one who may read the flow is told what they lack, not that they may not access it
        sees = user != "stranger"
        assert (r.json()["detail"] == "Only the flow's owner or an admin may do this") is sees, r.text
        assert get(world, world.shared)["id"] == world.shared
        r = world.client.get(f"/api/v1/flows/{world.shared}/executions/{run}", headers=bearer("owner"))
        assert r.status_code == 200

    def test_deleted_flow_accepts_no_new_runs(self, world: World) -> None:
        world.client.delete(f"/api/v1/flows/{world.public}", headers=bearer("owner"))
        r = world.client.post(
            f"/api/v1/flows/{world.public}/executions",
            json=make_execution(world.public),
            headers=bearer("owner"),
        )
        assert r.status_code == 404
        assert count(world, "executions", world.public) == 0


class TestDuplicate:
    def test_the_default_name_of_a_long_named_flow_can_be_saved_and_imported(self, world: World) -> None:
        """ "<name> (copy)" of a 250-character name was 257: the copy could not be saved back,
        nor its export imported (422 on name)."""
        long = world.client.post(
            "/api/v1/flows/create",
            json={"name": "n" * 250, "nodes": [], "edges": []},
            headers=bearer("owner"),
        ).json()
        copy = world.client.post(f"/api/v1/flows/{long['id']}/duplicate", headers=bearer("owner")).json()
        assert copy["name"] == "n" * 248 + " (copy)"
        again = world.client.post(f"/api/v1/flows/{copy['id']}/duplicate", headers=bearer("owner")).json()
        assert again["name"] == "n" * 248 + " (copy)"
        saved = world.client.post(f"/api/v1/flows/{copy['id']}", json=copy, headers=bearer("owner"))
        assert saved.status_code == 200, saved.text
        exported = world.client.get(f"/api/v1/flows/{copy['id']}/export", headers=bearer("owner")).json()
        imported = world.client.post("/api/v1/flows/import", json=exported, headers=bearer("owner"))
        assert imported.status_code == 200 and imported.json()["name"] == copy["name"], imported.text

    def test_copy_is_owned_by_the_caller_and_private(self, world: World) -> None:
        world.client.post(
            f"/api/v1/flows/{world.shared}",
            json={"description": "original", "nodes": [{"id": "n1"}], "edges": [{"source": "n1"}]},
            headers=bearer("owner"),
        )
        source = get(world, world.shared)
        r = world.client.post(f"/api/v1/flows/{world.shared}/duplicate", headers=bearer("reader"))
        assert r.status_code == 200, r.text
        copy = r.json()
        assert set(copy) >= FLOW_FIELDS
        assert copy["id"] != source["id"]
        assert copy["user_id"] == "reader"
        assert copy["access_control"] == {}
        assert (copy["nodes"], copy["edges"], copy["description"]) == (
            source["nodes"],
            source["edges"],
            source["description"],
        )
        assert source["name"] in copy["name"]
        assert isinstance(copy["created_at"], int)
        # private to the reader: not even the source's owner may read it; admins may
        assert world.client.get(f"/api/v1/flows/{copy['id']}", headers=bearer("owner")).status_code == 403
        assert world.client.get(f"/api/v1/flows/{copy['id']}", headers=bearer("stranger")).status_code == 403
        assert world.client.get(f"/api/v1/flows/{copy['id']}", headers=bearer("admin")).status_code == 200
        assert copy["id"] in ids(world, "/api/v1/flows/", "reader")
        # the reader owns it: may write it and delete it
        r = world.client.post(
            f"/api/v1/flows/{copy['id']}", json={"name": "mine now"}, headers=bearer("reader")
        )
        assert r.status_code == 200
        # and the source is as it was
        assert get(world, world.shared) == source

    def test_copy_takes_the_given_name(self, world: World) -> None:
        r = world.client.post(
            f"/api/v1/flows/{world.shared}/duplicate", json={"name": "My copy"}, headers=bearer("reader")
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "My copy"
        assert get(world, r.json()["id"], "reader")["name"] == "My copy"
        r = world.client.post(f"/api/v1/flows/{world.shared}/duplicate", json={}, headers=bearer("reader"))
        assert r.json()["name"] == "shared (copy)"
        r = world.client.post(
            f"/api/v1/flows/{world.shared}/duplicate", json={"name": ""}, headers=bearer("reader")
        )
        assert r.status_code == 422

    def test_copy_has_no_executions(self, world: World) -> None:
        world.post_run("owner", world.shared)
        copy = world.client.post(f"/api/v1/flows/{world.shared}/duplicate", headers=bearer("owner")).json()
        r = world.client.get(f"/api/v1/flows/{copy['id']}/executions/stats", headers=bearer("owner"))
        assert r.json()["total_executions"] == 0

    def test_needs_read_access(self, world: World) -> None:
        before = ids(world, "/api/v1/flows/accessible", "admin")
        r = world.client.post(f"/api/v1/flows/{world.private}/duplicate", headers=bearer("stranger"))
        assert r.status_code == 403
        assert ids(world, "/api/v1/flows/accessible", "admin") == before


def test_export_answers_the_wrapper(world: World) -> None:
    for user in ("owner", "reader", "admin"):
        r = world.client.get(f"/api/v1/flows/{world.shared}/export", headers=bearer(user))
        assert r.status_code == 200
        flow = get(world, world.shared, user)
        assert r.json() == {
            "version": "1.0",
            "flow": {k: flow[k] for k in ("name", "description", "nodes", "edges", "meta")},
            "exportedAt": flow["updated_at"],
        }
    assert (
        world.client.get(f"/api/v1/flows/{world.private}/export", headers=bearer("reader")).status_code == 403
    )


class TestMeta:
    def test_meta_is_an_object_never_null(self, world: World) -> None:
        r = world.client.post("/api/v1/flows/create", json={"name": "m"}, headers=bearer("owner"))
        assert r.json()["meta"] == {}
        fid = r.json()["id"]
        assert get(world, fid)["meta"] == {}
        r = world.client.post(
            "/api/v1/flows/create", json={"name": "n", "meta": None}, headers=bearer("owner")
        )
        assert r.json()["meta"] == {}
        for path in ("/api/v1/flows/", "/api/v1/flows/accessible"):
            rows = world.client.get(path, headers=bearer("owner")).json()
            assert rows and all(row["meta"] == {} for row in rows if row["name"] in ("m", "n"))
        r = world.client.post(f"/api/v1/flows/{fid}", json={"meta": None}, headers=bearer("owner"))
        assert r.status_code == 200 and r.json()["meta"] == {}
        r = world.client.post(f"/api/v1/flows/{fid}", json={"meta": {"a": 1}}, headers=bearer("owner"))
        assert r.json()["meta"] == {"a": 1} and get(world, fid)["meta"] == {"a": 1}
        export = world.client.get(f"/api/v1/flows/{world.public}/export", headers=bearer("owner")).json()
        assert export["flow"]["meta"] == {}


class TestImport:
    def test_takes_what_export_produced(self, world: World) -> None:
        world.client.post(
            f"/api/v1/flows/{world.shared}",
            json={"description": "d", "nodes": [{"id": "n1"}], "edges": [{"source": "n1"}], "meta": {"k": 2}},
            headers=bearer("owner"),
        )
        exported = world.client.get(f"/api/v1/flows/{world.shared}/export", headers=bearer("reader")).json()
        r = world.client.post("/api/v1/flows/import", json=exported, headers=bearer("reader"))
        assert r.status_code == 200, r.text
        flow = r.json()
        assert set(flow) >= FLOW_FIELDS
        assert flow["id"] != world.shared and flow["user_id"] == "reader"
        assert {k: flow[k] for k in exported["flow"]} == exported["flow"]
        assert get(world, flow["id"], "reader") == flow
        assert flow["id"] in ids(world, "/api/v1/flows/", "reader")

    def test_a_bare_flow_is_accepted(self, world: World) -> None:
        bare = get(world, world.public)
        r = world.client.post("/api/v1/flows/import", json=bare, headers=bearer("stranger"))
        assert r.status_code == 200, r.text
        flow = r.json()
        assert flow["user_id"] == "stranger" and flow["id"] != bare["id"] and flow["name"] == bare["name"]
        assert flow["meta"] == {}

    def test_an_exported_private_flow_imports_private(self, world: World) -> None:
        """Export leaves `access_control` out; the import made it null, public: every user could
        read the private flow's nodes (its prompts). It starts private, as a duplicate does; a
        body that gives `access_control` keeps it, `null` (public) included."""
        exported = world.client.get(f"/api/v1/flows/{world.private}/export", headers=bearer("owner")).json()
        flow = world.client.post("/api/v1/flows/import", json=exported, headers=bearer("owner")).json()
        assert flow["access_control"] == {}
        assert world.client.get(f"/api/v1/flows/{flow['id']}", headers=bearer("stranger")).status_code == 403
        assert flow["id"] not in ids(world, "/api/v1/flows/", "stranger")
        for given in (None, {"read": {"user_ids": ["reader"], "group_ids": []}}):
            body = {**exported["flow"], "access_control": given}
            r = world.client.post("/api/v1/flows/import", json=body, headers=bearer("owner"))
            assert r.status_code == 200 and r.json()["access_control"] == given, r.text

    @pytest.mark.parametrize(
        "body", [{}, {"version": "1.0"}, {"version": "1.0", "flow": {"nodes": []}}, {"flow": "x"}, []]
    )
    def test_bad_bodies_are_422_and_create_nothing(self, world: World, body: Any) -> None:
        before = len(world.ctx.directory.flows())
        r = world.client.post("/api/v1/flows/import", json=body, headers=bearer("owner"))
        assert r.status_code == 422, r.text
        assert "detail" in r.json()
        assert len(world.ctx.directory.flows()) == before

    def test_needs_a_user(self, world: World) -> None:
        r = world.client.post("/api/v1/flows/import", json={"name": "x"})
        assert r.status_code == 401


def test_execute_answers_as_the_peer(world: World) -> None:
    for user in ("owner", "reader", "admin"):
        r = world.client.post(f"/api/v1/flows/{world.shared}/execute", headers=bearer(user))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "message": "Flow execution is handled client-side",
            "flowId": world.shared,
            "status": "delegated_to_client",
        }
    r = world.client.post(f"/api/v1/flows/{world.private}/execute", headers=bearer("reader"))
    assert r.status_code == 403


def test_get_returns_the_flow(world: World) -> None:
    flow = get(world, world.shared, "reader")
    assert flow["id"] == world.shared
    assert flow["user_id"] == "owner"
    assert flow["name"] == "shared"
    assert flow["access_control"]["write"] == {"user_ids": ["writer"], "group_ids": []}
    assert get(world, world.public)["access_control"] is None
    assert get(world, world.private)["access_control"] == {}


FLOW_ROUTES = [
    ("GET", "", None),
    ("POST", "", {"name": "x"}),
    ("DELETE", "", None),
    ("POST", "/duplicate", None),
    ("GET", "/export", None),
    ("POST", "/execute", None),
    ("POST", "/executions", "RUN"),
    ("GET", "/executions", None),
    ("GET", "/executions?page=2", None),
    ("GET", "/executions/stats", None),
    ("GET", "/executions/list", None),
    ("POST", "/executions/cleanup", None),
    ("GET", f"/executions/{uuid.UUID(int=497)}", None),
    ("DELETE", f"/executions/{uuid.UUID(int=498)}", None),
    ("DELETE", "/executions", None),
]


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One app for the read-only checks below (a fresh one per test costs ~0.3 s)."""
    settings = Settings(
        db_path=tmp_path_factory.mktemp("flows") / "store.duckdb", webui_secret_key=SECRET, port=0
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield build_world(client)


@pytest.mark.parametrize(("method", "suffix", "body"), FLOW_ROUTES)
@pytest.mark.parametrize("user", ["admin", "owner", "stranger"])
def test_unknown_flow_is_404_everywhere(
    shared_world: World, method: str, suffix: str, body: Any, user: str
) -> None:
    world = shared_world
    for missing in (str(uuid.uuid4()), "no-such-flow"):
        kwargs: dict[str, Any] = {}
        if body == "RUN":
            kwargs["json"] = make_execution(missing)
        elif body is not None:
            kwargs["json"] = body
        r = world.client.request(method, f"/api/v1/flows/{missing}{suffix}", headers=bearer(user), **kwargs)
        assert r.status_code == 404, (method, suffix, r.text)
        assert r.json() == {"detail": "Flow not found"}
    assert len(world.ctx.directory.flows()) == 3  # nothing was created on the way
