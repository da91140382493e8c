"""Every error is JSON with a `detail`: the client parses every error body as JSON (contract)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import World, bearer, build_world, make_execution

LIMIT = 4096


@pytest.fixture
def small_world(settings: Settings) -> Iterator[World]:
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield build_world(client)


def _chunked(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 1024):
        yield body[i : i + 1024]


def test_every_error_is_json_with_detail(small_world: World) -> None:
    w = small_world
    run = w.post_run("owner", w.shared)["id"]
    missing = str(uuid.uuid4())
    flows = "/api/v1/flows"
    json_h = {"Content-Type": "application/json"}
    big = b'{"pad": "' + b"x" * (LIMIT * 2) + b'"}'
    # (expected status, method, path, request kwargs)
    cases: list[tuple[int, str, str, dict[str, Any]]] = [
        (401, "GET", f"{flows}/", {}),
        (401, "GET", f"{flows}/{w.shared}/executions", {}),
        (401, "POST", f"{flows}/{w.shared}/executions", {"json": make_execution(w.shared)}),
        (401, "GET", f"{flows}/{w.shared}/executions/stats", {"headers": {"Authorization": "Bearer nope"}}),
        (401, "GET", "/api/v1/users/me", {"headers": bearer("owner", expires_in=-10)}),
        (401, "GET", "/api/v1/users/me", {"headers": bearer("pending")}),
        (401, "GET", "/api/v1/users/me", {"headers": {"Authorization": "Bearer sk-" + "0" * 32}}),
        (401, "POST", "/api/v1/executions/batch", {"json": []}),
        (403, "GET", f"{flows}/{w.private}", {"headers": bearer("stranger")}),
        (403, "GET", f"{flows}/{w.private}/executions/{run}", {"headers": bearer("stranger")}),
        (403, "DELETE", f"{flows}/{w.shared}/executions", {"headers": bearer("reader")}),
        (403, "DELETE", f"{flows}/{w.shared}", {"headers": bearer("writer")}),
        (403, "POST", f"{flows}/{w.shared}", {"headers": bearer("writer"), "json": {"access_control": {}}}),
        (403, "GET", "/api/v1/users", {"headers": bearer("owner")}),
        (403, "POST", "/api/v1/keys", {"headers": bearer("owner"), "json": {"user_id": "owner"}}),
        (404, "GET", f"{flows}/{missing}", {"headers": bearer("owner")}),
        (404, "GET", f"{flows}/{missing}/executions/stats", {"headers": bearer("admin")}),
        (404, "GET", f"{flows}/{w.shared}/executions/not-a-uuid", {"headers": bearer("owner")}),
        (404, "GET", f"{flows}/{w.public}/executions/{run}", {"headers": bearer("owner")}),
        (404, "DELETE", f"{flows}/{w.shared}/executions/{missing}", {"headers": bearer("owner")}),
        (404, "GET", f"{flows}/{w.shared}/executions/{run}", {"headers": bearer("reader")}),
        (404, "PATCH", "/api/v1/users/nobody", {"headers": bearer("admin"), "json": {"role": "user"}}),
        (404, "DELETE", "/api/v1/keys/nokey", {"headers": bearer("admin")}),
        (404, "GET", "/api/v1/nothing-here", {"headers": bearer("owner")}),
        (404, "GET", "/nothing-here", {}),
        (405, "PUT", f"{flows}/{w.shared}/executions", {"headers": bearer("owner"), "json": {}}),
        (405, "PATCH", f"{flows}/{w.shared}/executions/stats", {"headers": bearer("owner")}),
        (405, "POST", "/health", {}),
        (405, "DELETE", "/api/v1/users/me", {"headers": bearer("owner")}),
        (409, "POST", "/api/v1/users", {"headers": bearer("admin"), "json": {"id": "owner"}}),
        (
            413,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": {**bearer("owner"), **json_h}, "content": big},
        ),
        (
            413,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": bearer("owner"), "content": _chunked(big)},
        ),
        (413, "POST", "/api/v1/executions/batch", {"headers": {**bearer("owner"), **json_h}, "content": big}),
        (413, "POST", f"{flows}/create", {"headers": bearer("owner"), "content": _chunked(big)}),
        (422, "GET", f"{flows}/{w.shared}/executions?page=0", {"headers": bearer("owner")}),
        (422, "GET", f"{flows}/{w.shared}/executions?page=10000001", {"headers": bearer("owner")}),
        (422, "GET", f"{flows}/{w.shared}/executions?page=abc", {"headers": bearer("owner")}),
        (422, "GET", f"{flows}/{w.shared}/executions/list?cursor=abc", {"headers": bearer("owner")}),
        (422, "GET", f"{flows}/{w.shared}/executions/list?limit=0", {"headers": bearer("owner")}),
        (422, "GET", f"{flows}/{w.shared}/executions/list?limit=100000", {"headers": bearer("owner")}),
        (
            422,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": bearer("owner"), "json": make_execution(w.public)},
        ),
        (
            422,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": bearer("owner"), "json": make_execution(w.shared, status="done")},
        ),
        (
            422,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": {**bearer("owner"), **json_h}, "content": b"{not json"},
        ),
        (
            422,
            "POST",
            f"{flows}/{w.shared}/executions",
            {"headers": {**bearer("owner"), **json_h}, "content": b'{"a": "\xff"}'},
        ),
        (
            422,
            "POST",
            "/api/v1/executions/batch",
            {"headers": {**bearer("owner"), **json_h}, "content": b"[{"},
        ),
        (422, "POST", f"{flows}/create", {"headers": bearer("owner"), "json": {"name": ""}}),
        (422, "POST", f"{flows}/{w.shared}/executions/cleanup?keep=-1", {"headers": bearer("owner")}),
        (422, "POST", "/api/v1/users", {"headers": bearer("admin"), "json": {"id": "x", "role": "root"}}),
    ]
    problems = []
    for status, method, path, kwargs in cases:
        r = w.client.request(method, path, **kwargs)
        where = f"{method} {path[:80]} -> {r.status_code} {r.text[:120]}"
        if r.status_code != status:
            problems.append(f"expected {status}: {where}")
            continue
        if not r.headers.get("content-type", "").startswith("application/json"):
            problems.append(f"not JSON: {where}")
            continue
        body = r.json()
        if not isinstance(body, dict) or "detail" not in body:
            problems.append(f"no detail: {where}")
            continue
        detail = body["detail"]
        if isinstance(detail, str):
            if not detail:
                problems.append(f"empty detail: {where}")
        elif status == 422 and isinstance(detail, list) and detail:
            if not all(isinstance(e, dict) and "loc" in e and "msg" in e for e in detail):
                problems.append(f"422 list without loc/msg: {where}")
        else:
            problems.append(f"detail neither a string nor FastAPI's 422 list: {where}")
        if status == 401 and r.headers.get("www-authenticate") != "Bearer":
            problems.append(f"401 without WWW-Authenticate: Bearer: {where}")
    assert not problems, "\n".join(problems)
    # none of it changed what was stored
    r = w.client.get(f"{flows}/{w.shared}/executions/stats", headers=bearer("owner"))
    assert r.json()["total_executions"] == 1
    assert len(w.ctx.directory.flows()) == 3


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/api/v1/prices", "GET, HEAD, PUT"),
        ("PUT", "/api/v1/flows/{flow}/executions", "GET, HEAD, POST, DELETE"),
        ("PATCH", "/api/v1/flows/{flow}/executions/{run}/annotation", "GET, HEAD, PUT, DELETE"),
        ("PUT", "/api/v1/alerts/rules", "GET, HEAD, POST"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_a_405_names_every_method_the_path_takes(
    small_world: World, method: str, path: str, allowed: str
) -> None:
    """The router answered with the first route that fits the path: `Allow: GET` for a path that
    also takes PUT."""
    w = small_world
    run = w.post_run("owner", w.shared)["id"]
    r = w.client.request(method, path.format(flow=w.shared, run=run), headers=bearer("admin"))
    assert r.status_code == 405
    assert r.headers["allow"] == allowed
    assert r.json() == {"detail": f"{method} is not allowed here; this path takes {allowed}"}


def test_the_page_range_is_in_the_schema_and_refused_in_one_shape(small_world: World) -> None:
    """`page` past the last page the store can reach was a plain-string 422, `page=0` FastAPI's
    list; both are now the list naming `query.page`, and the bound is in the OpenAPI schema."""
    w = small_world
    url = f"/api/v1/flows/{w.shared}/executions"
    for page in (0, 10_000_001):
        r = w.client.get(url, params={"page": page}, headers=bearer("owner"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page"], r.text
    assert w.client.get(url, params={"page": 10_000_000}, headers=bearer("owner")).json() == []
    spec = w.client.get("/openapi.json").json()
    [param] = [
        p
        for p in spec["paths"]["/api/v1/flows/{flow_id}/executions"]["get"]["parameters"]
        if p["name"] == "page"
    ]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, 10_000_000)


def test_a_huge_refused_value_is_not_echoed_whole(client: TestClient) -> None:
    """A 20 MB invalid value came back as a 20 MB 422 (`input` is the value refused)."""
    from api.errors import INPUT_MAX

    world = build_world(client)
    huge = "x" * 3_000_000
    bodies = [
        ("/api/v1/alerts/channels", {"name": huge, "kind": "webhook", "url": "https://example.com/h"}),
        (f"/api/v1/flows/{world.private}/executions", {"flow_id": world.private, "status": "success",
                                                         "execution_time": 1, "inputs": [huge]}),
        ("/api/v1/sql", {"sql": huge}),
    ]  # fmt: skip
    for path, body in bodies:
        r = client.post(path, json=body, headers=bearer("admin"))
        assert r.status_code == 422, r.text[:300]
        assert len(r.content) < 3 * INPUT_MAX, (path, len(r.content))
        cut = [i for i in r.json()["detail"] if isinstance(i.get("input"), str) and i["input"].endswith("…")]
        assert cut, (path, r.text[:500])
    # an unknown key is named in the location; a query parameter in its message too
    r = client.post("/api/v1/executions/search", json={"filter": {huge: 1}}, headers=bearer("admin"))
    assert r.status_code == 422 and len(r.content) < 4 * INPUT_MAX, len(r.content)
    r = client.get("/api/v1/flows/", params={"x" * 60_000: "1"}, headers=bearer("admin"))
    assert r.status_code == 422 and len(r.content) < 4 * INPUT_MAX, len(r.content)
    small = client.post("/api/v1/alerts/channels", json={"name": 5}, headers=bearer("admin"))
    assert any(i.get("input") == 5 for i in small.json()["detail"])  # a short one whole


@pytest.mark.parametrize(("charset", "encoding"), [("latin-1", "latin-1"), ("utf-16", "utf-16")])
def test_a_body_in_another_encoding_is_told_so(client: TestClient, charset: str, encoding: str) -> None:
    """orjson's "str is not valid UTF-8: surrogates not allowed" sent a caller looking for
    surrogates in a latin-1 or UTF-16 body."""
    from api.errors import NOT_UTF8

    body = '{"name": "café", "nodes": [], "edges": []}'.encode(encoding)
    headers = {**bearer("admin"), "Content-Type": f"application/json; charset={charset}"}
    r = client.post("/api/v1/flows/create", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["ctx"]["error"] == NOT_UTF8
    assert client.get("/api/v1/flows/", headers=bearer("admin")).json() == []
