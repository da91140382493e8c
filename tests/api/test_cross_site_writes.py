"""Cross-site writes: what a page on another site can make a browser send is refused.

A form posts `text/plain`, `multipart/form-data` or `application/x-www-form-urlencoded` with
the user's cookies and no preflight. Bodies must be JSON (NDJSON for batch: 415 otherwise), and
on a write the `token` cookie counts only when the request is not cross-site.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from analytics.access.auth import create_token
from analytics.core.context import Context
from api.content_type import accepted_types
from tests.factories import SECRET, World, bearer, make_execution

FORM_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
]


def _counts(ctx: Context) -> tuple[Any, ...]:
    def read(c: Any) -> tuple[Any, ...]:
        return tuple(
            c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "executions",
                "flows",
                "alert_channels",
                "alert_rules",
                "execution_annotations",
                "users",
                "groups",
                "api_keys",
                "prices",
                "retention_policies",
            )
        )

    return ctx.store.read(read)


@pytest.mark.parametrize("ctype", FORM_TYPES)
def test_save_run_refuses_form_bodies_and_stores_nothing(world: World, ctype: str) -> None:
    before = _counts(world.ctx)
    body = json.dumps(make_execution(world.private)).encode()
    r = world.client.post(
        f"/api/v1/flows/{world.private}/executions",
        content=body,
        headers={**bearer("owner"), "Content-Type": ctype},
    )
    assert r.status_code == 415, r.text
    assert r.json()["detail"].startswith("Content-Type must be application/json")
    assert _counts(world.ctx) == before


def test_a_real_multipart_form_to_save_run_is_415(world: World) -> None:
    before = _counts(world.ctx)
    r = world.client.post(
        f"/api/v1/flows/{world.private}/executions",
        files={"x": ("run.json", json.dumps(make_execution(world.private)), "application/json")},
        headers=bearer("owner"),
    )
    assert r.status_code == 415, r.text
    assert _counts(world.ctx) == before


@pytest.mark.parametrize("ctype", [*FORM_TYPES, None])
def test_batch_refuses_form_and_untyped_bodies(world: World, ctype: str | None) -> None:
    before = _counts(world.ctx)
    body = json.dumps([make_execution(world.private)]).encode()
    headers = bearer("owner") | ({"Content-Type": ctype} if ctype else {})
    r = world.client.post("/api/v1/executions/batch", content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["detail"] == (
        "Content-Type must be application/json or application/x-ndjson"
        f" (given: {repr(ctype.split(';')[0]) if ctype else 'none'})"
    )
    assert _counts(world.ctx) == before


@pytest.mark.parametrize(
    "ctype",
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/x-ndjson"],
)
def test_batch_takes_json_and_ndjson(world: World, ctype: str) -> None:
    run = make_execution(world.private)
    body = json.dumps(run) if "ndjson" in ctype else json.dumps([run])
    r = world.client.post(
        "/api/v1/executions/batch", content=body.encode(), headers={**bearer("owner"), "Content-Type": ctype}
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
@pytest.mark.parametrize("ctype", ["application/json", "application/x-ndjson"])
def test_compressed_bodies_are_415_not_read_as_json(world: World, encoding: str, ctype: str) -> None:
    """Read as it was, a gzipped NDJSON batch came back 200 with "line N is not JSON" per item."""
    before = _counts(world.ctx)
    run = make_execution(world.private)
    raw = (json.dumps(run) if "ndjson" in ctype else json.dumps([run])).encode()
    r = world.client.post(
        "/api/v1/executions/batch",
        content=gzip.compress(raw),
        headers={**bearer("owner"), "Content-Type": ctype, "Content-Encoding": encoding},
    )
    assert r.status_code == 415, r.text
    assert r.json()["detail"] == (
        f"Content-Encoding '{encoding.lower()}' is not supported: send the body uncompressed"
    )
    assert _counts(world.ctx) == before
    # identity is no encoding at all
    r = world.client.post(
        "/api/v1/executions/batch",
        content=raw,
        headers={**bearer("owner"), "Content-Type": ctype, "Content-Encoding": "identity"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate,chunked", "br , chunked"])
def test_a_transfer_coding_other_than_chunked_is_415(world: World, coding: str) -> None:
    """uvicorn undoes only the chunking: `Transfer-Encoding: gzip, chunked` was read as JSON and
    answered "JSON decode error", or stored a body the client meant compressed."""
    before = _counts(world.ctx)
    r = world.client.post(
        "/api/v1/executions/batch",
        content=json.dumps([make_execution(world.private)]).encode(),
        headers={**bearer("owner"), "Content-Type": "application/json", "Transfer-Encoding": coding},
    )
    assert r.status_code == 415, r.text
    other = coding.split(",")[0].strip()
    assert r.json()["detail"] == f"Transfer-Encoding '{other}' is not supported: send the body uncompressed"
    assert _counts(world.ctx) == before


def test_json_suffix_types_and_charset_are_json(world: World) -> None:
    for ctype in ("application/vnd.flowhistory+json", "application/json;charset=UTF-8"):
        r = world.client.post(
            "/api/v1/flows/create",
            content=json.dumps({"name": ctype, "nodes": [], "edges": []}).encode(),
            headers={**bearer("owner"), "Content-Type": ctype},
        )
        assert r.status_code == 200, r.text


def test_ndjson_is_only_for_batch(world: World) -> None:
    before = _counts(world.ctx)
    r = world.client.post(
        f"/api/v1/flows/{world.private}/executions",
        content=json.dumps(make_execution(world.private)).encode(),
        headers={**bearer("owner"), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 415, r.text
    assert _counts(world.ctx) == before


@pytest.mark.parametrize(
    ("ctype", "status", "detail"),
    [
        (None, 415, "Content-Type must be application/json or application/x-ndjson (given: none)"),
        (
            "text/plain",
            415,
            "Content-Type must be application/json or application/x-ndjson (given: 'text/plain')",
        ),
        ("application/json", 422, "the body is empty: send a JSON array of executions, or NDJSON"),
        ("application/x-ndjson", 200, None),  # NDJSON of no lines: a batch of nothing
        ("Application/X-NDJSON; charset=utf-8", 200, None),  # a media type is not case-sensitive
    ],
)
def test_a_batch_without_a_body(world: World, ctype: str | None, status: int, detail: str | None) -> None:
    """Without a body and a type the batch answered 200, "stored 0", where its README says a body
    without a type is a 415; an empty body said to be JSON is not JSON."""
    before = _counts(world.ctx)
    headers = bearer("owner") | ({"Content-Type": ctype} if ctype else {})
    for body in (b"", b" \n "):
        r = world.client.post("/api/v1/executions/batch", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert (r.json()["stored"] == 0) if detail is None else (r.json()["detail"] == detail), r.text
    assert _counts(world.ctx) == before


def test_no_body_and_no_type_is_not_a_415(world: World) -> None:
    """Nothing to misread: the route answers as it would (duplicate takes an optional body)."""
    r = world.client.post(f"/api/v1/flows/{world.private}/duplicate", headers=bearer("owner"))
    assert r.status_code == 200, r.text
    r = world.client.post(
        f"/api/v1/flows/{world.private}/duplicate", headers={**bearer("owner"), "Content-Type": "text/plain"}
    )
    assert r.status_code == 200, r.text


def _body_routes(world: World) -> list[tuple[str, str]]:
    out = []
    for context in iter_route_contexts(world.client.app.routes):  # type: ignore[attr-defined]
        route = context.route
        if isinstance(route, APIRoute) and accepted_types(route) is not None:
            path = route.path_format
            for name in ("flow_id", "execution_id", "rule_id", "channel_id", "user_id", "group_id", "job"):
                path = path.replace("{" + name + "}", "x")
            out += [(m, path) for m in sorted(route.methods)]
    return out


def test_every_route_taking_a_body_refuses_text_plain(world: World) -> None:
    """Every operation with a request body, as an admin (no access check hides the answer)."""
    routes = _body_routes(world)
    assert len(routes) >= 25, routes  # the sweep really covers the write routes
    before = _counts(world.ctx)
    for method, path in routes:
        assert "{" not in path, path
        r = world.client.request(
            method, path, content=b'{"name": "x"}', headers={**bearer("admin"), "Content-Type": "text/plain"}
        )
        assert r.status_code == 415, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["detail"].startswith("Content-Type must be ")
    assert _counts(world.ctx) == before


def test_openapi_declares_415_where_a_body_is_taken(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert ("415" in op["responses"]) == ("requestBody" in op), (method, path)


# -- the token cookie ----------------------------------------------------------------------------


def _cookie(user: str) -> dict[str, str]:
    return {"Cookie": f"token={create_token(SECRET, user)}"}


def _cookie_writes(world: World) -> list[tuple[str, str, Any]]:
    return [
        ("POST", f"/api/v1/flows/{world.private}/executions", make_execution(world.private)),
        ("POST", "/api/v1/executions/batch", [make_execution(world.private)]),
        ("POST", "/api/v1/flows/create", {"name": "csrf", "nodes": [], "edges": []}),
        ("POST", f"/api/v1/flows/{world.private}", {"name": "renamed"}),
        ("POST", f"/api/v1/flows/{world.private}/duplicate", None),
        ("DELETE", f"/api/v1/flows/{world.private}/executions", None),
        ("DELETE", f"/api/v1/flows/{world.private}", None),
    ]


CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another subdomain's page
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # a sandboxed frame, a data: URL
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=[str(h) for h in CROSS_SITE])
def test_cross_site_cookie_writes_are_401_and_store_nothing(world: World, headers: dict[str, str]) -> None:
    before = _counts(world.ctx)
    for method, path, body in _cookie_writes(world):
        r = world.client.request(method, path, json=body, headers={**_cookie("owner"), **headers})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert _counts(world.ctx) == before
    assert world.ctx.directory.flow(world.private) is not None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://testserver"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://behind.a.proxy"},
        {"Sec-Fetch-Site": "none"},
    ],
    ids=["a script", "the same origin", "same origin behind a proxy", "typed by the user"],
)
def test_cookie_writes_that_are_not_cross_site_work(world: World, headers: dict[str, str]) -> None:
    """The peer takes the cookie on every call (the contract): a client with only the cookie
    was refused every write."""
    answers = []
    for method, path, body in _cookie_writes(world):
        r = world.client.request(method, path, json=body, headers={**_cookie("owner"), **headers})
        answers.append((method, path, r.status_code))
    assert {status for *_, status in answers} == {200}, answers
    assert world.ctx.directory.flow(world.private) is None  # the last one deleted it


def test_cookie_still_reads_on_get_and_head(world: World) -> None:
    world.post_run("owner", world.private)
    r = world.client.get(f"/api/v1/flows/{world.private}/executions", headers=_cookie("owner"))
    assert r.status_code == 200 and len(r.json()) == 1
    r = world.client.get(
        f"/api/v1/flows/{world.private}/executions/download?format=jsonl", headers=_cookie("owner")
    )
    assert r.status_code == 200 and len(r.text.splitlines()) == 1
    assert world.client.head("/api/v1/users/me", headers=_cookie("owner")).status_code in (200, 405)
