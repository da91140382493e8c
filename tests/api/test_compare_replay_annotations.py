"""Compare, replay and annotation routes over HTTP: the access matrix first, then each route."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from httpx import Response

from analytics.access.permissions import Viewer
from analytics.flows import registry as flows
from analytics.history import annotations
from tests.factories import (
    ADMIN,
    World,
    bearer,
    fresh_flow,
    headers,
    make_execution,
    open_world,
    save_run,
)

CALLERS = ("admin", "owner", "reader", "writer", "grouped", "stranger", "pending", "anonymous")
READERS = {
    "shared": {"admin", "owner", "reader", "writer", "grouped"},
    "public": {"admin", "owner", "reader", "writer", "grouped", "stranger"},
    "private": {"admin", "owner"},
}
WRITERS = {
    "shared": {"admin", "owner", "writer"},
    "public": {"admin", "owner"},
    "private": {"admin", "owner"},
}
UNKNOWN = "00000000-0000-7000-8000-000000000000"


@pytest.fixture(scope="module")
def mworld(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from open_world(tmp_path_factory.mktemp("crA"))


def own_run(w: World, fid: str, user: str) -> str:
    """The caller's own run, so row visibility does not hide it: the cell tests flow access only."""
    return save_run(w, fid, user_id="owner" if user == "anonymous" else user)


def url(fid: str, run: str, tail: str) -> str:
    return f"/api/v1/flows/{fid}/executions/{run}/{tail}"


Effect = Callable[[], bool] | None


def _put(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    run = save_run(w, fid)
    r = w.client.put(url(fid, run, "annotation"), json={"note": "n", "rating": 1}, headers=headers(user))
    return r, lambda: annotations.annotations_for(w.ctx, run) is not None


def _delete(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    run = save_run(w, fid)
    annotations.set_annotation(w.ctx, ADMIN, fid, run, {"note": "n"})
    r = w.client.delete(url(fid, run, "annotation"), headers=headers(user))
    return r, lambda: annotations.annotations_for(w.ctx, run) is None


def _get(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    run = own_run(w, fid, user)
    annotations.set_annotation(w.ctx, ADMIN, fid, run, {"tags": ["t"]})
    return w.client.get(url(fid, run, "annotation"), headers=headers(user)), None


def _replay(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(url(fid, own_run(w, fid, user), "replay"), headers=headers(user)), None


def _replays(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    return w.client.get(url(fid, own_run(w, fid, user), "replays"), headers=headers(user)), None


def _compare_replay(w: World, fid: str, user: str) -> tuple[Response, Effect]:
    run = own_run(w, fid, user)
    save_run(w, fid, user_id="owner" if user == "anonymous" else user, replay_of=run)
    return w.client.get(url(fid, run, "compare-replay"), headers=headers(user)), None


ROUTES: dict[str, tuple[str, Callable[[World, str, str], tuple[Response, Effect]]]] = {
    "put annotation": ("write", _put),
    "delete annotation": ("write", _delete),
    "get annotation": ("read", _get),
    "replay": ("read", _replay),
    "replays": ("read", _replays),
    "compare-replay": ("read", _compare_replay),
}


@pytest.mark.parametrize("user", CALLERS)
@pytest.mark.parametrize("kind", ["shared", "public", "private"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_access_matrix(mworld: World, route: str, kind: str, user: str) -> None:
    level, call = ROUTES[route]
    r, effect = call(mworld, fresh_flow(mworld, kind), user)
    allowed = (WRITERS if level == "write" else READERS)[kind]
    want = 401 if user in ("pending", "anonymous") else 200 if user in allowed else 403
    assert r.status_code == want, (route, kind, user, r.text)
    if want != 200:
        assert isinstance(r.json()["detail"], str)
    if want == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if effect is not None:
        assert effect() == (want == 200), f"{route}: changed on {want}"


class TestAnnotation:
    def test_put_get_delete(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        path = url(world.shared, run, "annotation")
        assert world.client.get(path, headers=bearer("writer")).status_code == 404
        body = {"note": "wrong tone", "tags": ["tone", "gpt-4o", "tone"], "rating": -1}
        r = world.client.put(path, json=body, headers=bearer("writer"))
        assert r.status_code == 200, r.text
        got = r.json()
        assert {k: got[k] for k in ("execution_id", "flow_id", "note", "tags", "rating", "updated_by")} == {
            "execution_id": run,
            "flow_id": world.shared,
            "note": "wrong tone",
            "tags": ["tone", "gpt-4o"],
            "rating": -1,
            "updated_by": "writer",
        }
        assert isinstance(got["updated_at"], int)
        assert world.client.get(path, headers=bearer("owner")).json() == got
        r = world.client.put(path, json={"rating": None}, headers=bearer("owner"))
        assert (r.json()["note"], r.json()["tags"], r.json()["rating"]) == (None, [], None)
        assert world.client.delete(path, headers=bearer("owner")).json() is True
        assert world.client.get(path, headers=bearer("owner")).status_code == 404

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"note": "x" * 10_001}, ["body", "note"]),
            ({"tags": ["t"] * 51}, ["body", "tags"]),
            ({"tags": ["x" * 65]}, ["body", "tags", 0]),
            ({"tags": ["a b"]}, ["body", "tags"]),
            ({"rating": 0}, ["body", "rating"]),
            ({"rating": True}, ["body", "rating"]),
            ({"stars": 5}, ["body", "stars"]),
            ([], ["body"]),
        ],
    )
    def test_bad_body_is_422_naming_the_field(self, world: World, body: Any, loc: list[Any]) -> None:
        run = world.post_run("owner", world.shared)["id"]
        r = world.client.put(url(world.shared, run, "annotation"), json=body, headers=bearer("owner"))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == loc

    def test_unknown_run_or_flow(self, world: World) -> None:
        r = world.client.put(url(world.shared, UNKNOWN, "annotation"), json={}, headers=bearer("owner"))
        assert (r.status_code, r.json()) == (404, {"detail": "Execution not found"})
        r = world.client.put(url("nope", UNKNOWN, "annotation"), json={}, headers=bearer("owner"))
        assert (r.status_code, r.json()) == (404, {"detail": "Flow not found"})

    def test_reader_cannot_see_annotations_on_others_runs(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        world.client.put(url(world.shared, run, "annotation"), json={"note": "x"}, headers=bearer("owner"))
        r = world.client.get(url(world.shared, run, "annotation"), headers=bearer("reader"))
        assert (r.status_code, r.json()) == (404, {"detail": "Execution not found"})

    def test_gone_with_its_run(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        path = url(world.shared, run, "annotation")
        world.client.put(path, json={"note": "x"}, headers=bearer("owner"))
        world.client.delete(f"/api/v1/flows/{world.shared}/executions/{run}", headers=bearer("owner"))
        assert world.client.get(path, headers=bearer("owner")).status_code == 404
        assert world.client.put(path, json={"note": "y"}, headers=bearer("owner")).status_code == 404


class TestCompare:
    def test_not_authenticated(self, world: World) -> None:
        r = world.client.post("/api/v1/executions/compare", json={"ids": [UNKNOWN, UNKNOWN]})
        assert r.status_code == 401

    def test_compare_differing_nodes_first(self, world: World) -> None:
        a = world.post_run("owner", world.shared, text="Hi")["id"]
        b = world.post_run("owner", world.shared, text="Ho")["id"]
        r = world.client.post("/api/v1/executions/compare", json={"ids": [a, b]}, headers=bearer("owner"))
        assert r.status_code == 200, r.text
        got = r.json()
        assert [e["id"] for e in got["executions"]] == [a, b]
        assert [(n["node_id"].split("_")[0], n["differs"]) for n in got["nodes"]] == [
            ("model", True),
            ("input", False),
        ]
        model = got["nodes"][0]
        assert model["runs"][0]["diff"] is None
        assert model["runs"][1]["diff"] == {
            "changes": [{"path": "/1", "kind": "changed", "old": "i", "new": "o"}],
            "truncated": False,
        }
        assert model["runs"][1]["model"] == "gpt-4o-mini" and model["runs"][1]["tokens_estimated"] is True
        assert (got["max_depth"], got["max_changes"]) == (20, 100)

    @pytest.mark.parametrize(
        ("ids", "loc"),
        [
            ([UNKNOWN], ["body", "ids"]),
            ([UNKNOWN] * 11, ["body", "ids"]),
            ([UNKNOWN, "x"], ["body", "ids", 1]),
        ],
    )
    def test_bad_ids_are_422(self, world: World, ids: list[str], loc: list[Any]) -> None:
        r = world.client.post("/api/v1/executions/compare", json={"ids": ids}, headers=bearer("owner"))
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == loc

    def test_extra_keys_and_duplicates_are_refused(self, world: World) -> None:
        a = world.post_run("owner", world.shared)["id"]
        r = world.client.post("/api/v1/executions/compare", json={"ids": [a, a]}, headers=bearer("owner"))
        assert r.status_code == 422
        r = world.client.post(
            "/api/v1/executions/compare", json={"ids": [a, a], "x": 1}, headers=bearer("owner")
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "x"]

    def test_never_reveals_a_run_the_caller_may_not_see(self, world: World) -> None:
        mine = world.post_run("reader", world.shared)["id"]
        theirs = world.post_run("owner", world.shared)["id"]
        private = world.post_run("owner", world.private)["id"]
        for ids in ([mine, theirs], [mine, private], [mine, UNKNOWN]):
            r = world.client.post("/api/v1/executions/compare", json={"ids": ids}, headers=bearer("reader"))
            assert (r.status_code, r.json()) == (404, {"detail": "Execution not found"})


class TestReplay:
    def test_replay_save_link_and_compare_in_one_call(self, world: World) -> None:
        original = world.post_run("owner", world.shared, inputs={"prompt": "hello", "files": []})
        flows.update_flow(world.ctx, Viewer("owner"), world.shared, {"nodes": [{"id": "model_2"}]})
        r = world.client.get(url(world.shared, original["id"], "replay"), headers=bearer("owner"))
        assert r.status_code == 200, r.text
        payload = r.json()
        assert payload["inputs"] == original["inputs"]
        assert payload["definition"]["nodes"] == [{"id": "model_1"}]  # what ran, not today's flow
        assert payload["definition"]["version"] == original["flow_version"]
        assert payload["definition_is_current"] is False
        assert payload["body"]["replay_of"] == original["id"]

        run = make_execution(world.shared, text="Hey")
        run.update(payload["body"])
        saved = world.client.post(payload["post_to"], json=run, headers=bearer("owner"))
        assert saved.status_code == 200, saved.text
        assert saved.json()["replay_of"] == original["id"]

        replays = world.client.get(url(world.shared, original["id"], "replays"), headers=bearer("owner"))
        assert [s["id"] for s in replays.json()] == [saved.json()["id"]]
        r = world.client.get(url(world.shared, original["id"], "compare-replay"), headers=bearer("owner"))
        assert r.status_code == 200, r.text
        assert [e["id"] for e in r.json()["executions"]] == [original["id"], saved.json()["id"]]
        assert r.json()["nodes"][0]["differs"] is True

    def test_no_replay_is_404(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        r = world.client.get(url(world.shared, run, "compare-replay"), headers=bearer("owner"))
        assert r.status_code == 404 and "no replay" in r.json()["detail"]

    def test_others_runs_are_not_found_for_a_reader(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        for tail in ("replay", "replays", "compare-replay"):
            r = world.client.get(url(world.shared, run, tail), headers=bearer("reader"))
            assert (r.status_code, r.json()) == (404, {"detail": "Execution not found"}), tail

    def test_limit_is_checked(self, world: World) -> None:
        run = world.post_run("owner", world.shared)["id"]
        r = world.client.get(url(world.shared, run, "replays") + "?limit=0", headers=bearer("owner"))
        assert r.status_code == 422
        r = world.client.get(url(world.shared, run, "replays") + "?limit=100000", headers=bearer("owner"))
        assert r.status_code == 422 and "limit" in r.json()["detail"]
