"""The contract's order on a write with a body: the flow exists (404), the caller may use it
(403), and only then the body (422). A body that did not fit was answered first: a caller
without access was told what it lacked, and one to a missing flow got a 422, where the same
request with a good body answered 403 or 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import World, bearer, make_execution


def _requests(w: World, flow: str, run_id: str) -> dict[str, tuple[str, str, Any]]:
    return {
        "save a run": ("POST", f"/api/v1/flows/{flow}/executions", {"flow_id": flow, "status": "bogus"}),
        "update the flow": ("POST", f"/api/v1/flows/{flow}", {"name": 7}),
        "annotate a run": ("PUT", f"/api/v1/flows/{flow}/executions/{run_id}/annotation", {"rating": 5}),
        "duplicate the flow": ("POST", f"/api/v1/flows/{flow}/duplicate", {"name": ""}),
    }


@pytest.mark.parametrize("what", ["save a run", "update the flow", "annotate a run", "duplicate the flow"])
def test_a_missing_flow_or_no_access_comes_before_a_bad_body(world: World, what: str) -> None:
    run_id = world.post_run("owner", world.private)["id"]
    method, path, body = _requests(world, world.private, run_id)[what]
    r = world.client.request(method, path, json=body, headers=bearer("stranger"))
    assert r.status_code == 403, (what, r.status_code, r.text)
    method, path, body = _requests(world, "no-such-flow", run_id)[what]
    r = world.client.request(method, path, json=body, headers=bearer("stranger"))
    assert r.status_code == 404, (what, r.status_code, r.text)
    method, path, body = _requests(world, world.private, run_id)[what]
    r = world.client.request(method, path, json=body, headers=bearer("owner"))
    assert r.status_code == 422, (what, r.status_code, r.text)  # the owner is told what is wrong


def test_a_good_run_still_saves(world: World) -> None:
    r = world.client.post(
        f"/api/v1/flows/{world.private}/executions",
        json=make_execution(world.private),
        headers=bearer("owner"),
    )
    assert r.status_code == 200, r.text


QUERIES = {
    "a page below 1": ("GET", "executions?page=0"),
    "a stats start that is no time": ("GET", "executions/stats?start=yesterday"),
    "a status that is none": ("GET", "executions/stats?status=bogus"),
    "a negative keep": ("POST", "executions/cleanup?keep=-1"),
    "a cursor list limit of 0": ("GET", "executions/list?limit=0"),
    "a download format that is none": ("GET", "executions/download?format=xml"),
    "a download filter that is not JSON": ("GET", "executions/download?filter={bad"),
    "a replays limit of 0": ("GET", "executions/00000000-0000-4000-8000-000000000000/replays?limit=0"),
}


@pytest.mark.parametrize("what", list(QUERIES))
def test_a_missing_flow_or_no_access_comes_before_a_bad_query(world: World, what: str) -> None:
    """The same order for a query: a stranger's `?page=0` was a 422, and so was a missing flow's."""
    method, tail = QUERIES[what]
    r = world.client.request(method, f"/api/v1/flows/{world.private}/{tail}", headers=bearer("stranger"))
    assert r.status_code == 403, (what, r.status_code, r.text)
    r = world.client.request(method, f"/api/v1/flows/no-such-flow/{tail}", headers=bearer("stranger"))
    assert r.status_code == 404, (what, r.status_code, r.text)
    r = world.client.request(method, f"/api/v1/flows/{world.private}/{tail}", headers=bearer("owner"))
    assert r.status_code == 422, (what, r.status_code, r.text)


@pytest.mark.parametrize("what", ["save a run", "update the flow", "annotate a run", "duplicate the flow"])
def test_a_missing_flow_or_no_access_comes_before_a_body_that_is_not_json(world: World, what: str) -> None:
    """FastAPI reads a body before the route's checks: `{bad` was a 422 to a stranger and for a
    missing flow, where saving a run (which reads its body itself) answered 403 and 404."""
    run_id = world.post_run("owner", world.private)["id"]
    headers = {"content-type": "application/json"}
    for flow, user, status in (
        (world.private, "stranger", 403),
        ("no-such-flow", "stranger", 404),
        (world.private, "owner", 422),
    ):
        method, path, _ = _requests(world, flow, run_id)[what]
        r = world.client.request(method, path, content=b"{bad", headers={**headers, **bearer(user)})
        assert r.status_code == status, (what, user, r.status_code, r.text)
    r = world.client.request(method, path, content=b"{bad", headers=headers)
    assert r.status_code == 401  # no credential: the 401 first, as before
