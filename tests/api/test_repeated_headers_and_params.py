"""A header or a query parameter given twice is not silently read as one of its values.

Starlette keeps the last value of a repeated query parameter (`cleanup?keep=5&keep=0` deleted
every run of the flow) and the first of a repeated header (`Content-Encoding: identity` then
`gzip` got a gzipped batch past the 415, refused line by line as "not JSON"). A list parameter
(`?measures=runs&measures=cost`) is repeated on purpose and stays so. And a credential comes
first: a body of the wrong type sent without one is the 401 every route answers, not a 415."""

from __future__ import annotations

import gzip

import orjson

from tests.factories import World, bearer, make_execution


def test_a_one_value_parameter_given_twice_is_a_422_and_nothing_is_deleted(world: World) -> None:
    flow = world.shared
    for _ in range(3):
        world.post_run("owner", flow)
    r = world.client.post(f"/api/v1/flows/{flow}/executions/cleanup?keep=2&keep=0", headers=bearer("owner"))
    assert r.status_code == 422, r.text
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["query", "keep"] and "given 2 times" in issue["msg"], issue
    stats = world.client.get(f"/api/v1/flows/{flow}/executions/stats", headers=bearer("owner")).json()
    assert stats["total_executions"] == 3
    listed = world.client.get(
        f"/api/v1/flows/{flow}/executions/list?limit=1&limit=2", headers=bearer("owner")
    )
    assert listed.status_code == 422 and listed.json()["detail"][0]["loc"] == ["query", "limit"]


def test_a_list_parameter_is_still_repeated(world: World) -> None:
    flow = world.shared
    world.post_run("owner", flow)
    r = world.client.get(
        f"/api/v1/flows/{flow}/trend?measures=runs&measures=cost&start=2000-01-01&end=2100-01-01&bucket=month",
        headers=bearer("owner"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["totals"][0]["measures"]["runs"]["value"] == 1
    assert set(r.json()["measures"]) == {"runs", "cost"}


def test_a_second_content_encoding_or_content_type_is_a_415(world: World) -> None:
    flow = world.shared
    line = orjson.dumps(make_execution(flow)) + b"\n"
    for headers, says in (
        ([("Content-Encoding", "identity"), ("Content-Encoding", "gzip")], "Content-Encoding 'gzip'"),
        ([("Content-Type", "text/plain")], "Content-Type is given 2 times"),
    ):
        sent = [*bearer("owner").items(), ("Content-Type", "application/x-ndjson"), *headers]
        body = gzip.compress(line) if "gzip" in says else line
        r = world.client.post("/api/v1/executions/batch", content=body, headers=sent)
        assert r.status_code == 415, (headers, r.status_code, r.text)
        assert says in r.json()["detail"], r.json()
    stats = world.client.get(f"/api/v1/flows/{flow}/executions/stats", headers=bearer("owner")).json()
    assert stats["total_executions"] == 0


def test_without_a_credential_a_body_of_the_wrong_type_is_the_401(world: World) -> None:
    flow = world.shared
    for path in (f"/api/v1/flows/{flow}/executions", "/api/v1/executions/batch"):
        r = world.client.post(path, content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 401, (path, r.status_code, r.text)
        r = world.client.post(path, content=b"x", headers={**bearer("owner"), "Content-Type": "text/plain"})
        assert r.status_code == 415, (path, r.status_code, r.text)
