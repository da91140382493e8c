"""Bad input gets a clear 4xx with a JSON `detail` naming the problem, never a 500, and nothing
already stored is lost or altered. Batch ingest reports each item and keeps the good ones.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.history import ingest
from api.app import create_app
from tests.factories import SECRET, World, bearer, build_world, make_execution, open_world

JSON = {"Content-Type": "application/json"}


def _settings(tmp: Any, **update: Any) -> Settings:
    return Settings(db_path=tmp / "store.duckdb", webui_secret_key=SECRET, port=0, **update)


@pytest.fixture(scope="module", params=["standalone", "sqlite"])
def bw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The contract's answers to bad input hold in standalone mode and in Open WebUI mode."""
    yield from open_world(tmp_path_factory.mktemp(f"bad-{request.param}"), request.param)


@pytest.fixture
def flow(bw: World) -> str:
    """A fresh flow shaped like the world's shared flow, holding three runs (owner, reader, writer)."""
    acl = bw.ctx.directory.flow(bw.shared)
    assert acl is not None
    fid = bw.new_flow(name="bad-input", access_control=acl.access_control)
    for user, status in (("owner", "success"), ("reader", "error"), ("writer", "aborted")):
        bw.post_run(user, fid, status=status)
    return fid


def everything(w: World, fid: str) -> tuple[Any, ...]:
    """What a caller and the store can see: API answers for the flow and every stored row."""
    h = bearer("owner")
    rows = w.ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, flow_id, user_id, status, execution_time, created_at, inputs, outputs,"
            " node_results, errors, meta FROM executions ORDER BY id"
        ).fetchall()
    )
    nodes = w.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM execution_nodes").fetchall())
    return (
        w.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=h).json(),
        w.client.get(f"/api/v1/flows/{fid}/executions", headers=h).json(),
        w.client.get(f"/api/v1/flows/{fid}/executions/list", headers=h).json(),
        rows,
        nodes,
    )


def assert_refused(r: Response, status: int = 422) -> Any:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str | list) and detail
    return detail


def names(detail: Any, word: str) -> bool:
    """Does the error detail name `word` (a field, or the body/JSON problem)?"""
    if isinstance(detail, str):
        return word in detail
    return any(word in [str(p) for p in e["loc"]] or word in e["msg"] for e in detail)


def nested_text(depth: int) -> str:
    """JSON text of objects nested `depth` deep (built as text: encoders have depth limits too)."""
    return '{"a": ' * depth + "1" + "}" * depth


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


# --- E1: the execution form -------------------------------------------------------------------

# (name, changes to a good run (None value = drop the key), the field the detail must name)
_DROP = object()
WRONG_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("status int", {"status": 1}, "status"),
    ("status null", {"status": None}, "status"),
    ("status unknown", {"status": "done"}, "status"),
    ("status wrong case", {"status": "SUCCESS"}, "status"),
    ("status list", {"status": ["success"]}, "status"),
    ("execution_time string", {"execution_time": "abc"}, "execution_time"),
    ("execution_time float", {"execution_time": 1.5}, "execution_time"),
    # a number in a string was stored (lax mode): the contract and the schema say integer
    ("execution_time digits", {"execution_time": "15"}, "execution_time"),
    ("execution_time underscores", {"execution_time": "1_000"}, "execution_time"),
    ("execution_time spaced", {"execution_time": " 15 "}, "execution_time"),
    ("execution_time bool", {"execution_time": True}, "execution_time"),
    ("execution_time false", {"execution_time": False}, "execution_time"),
    ("execution_time negative", {"execution_time": -1}, "execution_time"),
    ("execution_time huge", {"execution_time": 2**53 + 1}, "execution_time"),
    ("execution_time 2**64", {"execution_time": 2**64}, "execution_time"),
    ("execution_time null", {"execution_time": None}, "execution_time"),
    ("execution_time object", {"execution_time": {"ms": 5}}, "execution_time"),
    ("inputs list", {"inputs": [1, 2]}, "inputs"),
    ("inputs string", {"inputs": "hello"}, "inputs"),
    ("inputs number", {"inputs": 5}, "inputs"),
    ("outputs list", {"outputs": ["x"]}, "outputs"),
    ("node_results string", {"node_results": "x"}, "node_results"),
    ("errors list", {"errors": ["boom"]}, "errors"),
    ("errors string", {"errors": "boom"}, "errors"),
    ("flow_id int", {"flow_id": 5}, "flow_id"),
    ("flow_id empty", {"flow_id": ""}, "flow_id"),
    ("missing flow_id", {"flow_id": _DROP}, "flow_id"),
    ("missing status", {"status": _DROP}, "status"),
    ("missing execution_time", {"execution_time": _DROP}, "execution_time"),
]


@pytest.mark.parametrize(("case", "change", "field"), WRONG_FIELDS, ids=[c[0] for c in WRONG_FIELDS])
def test_wrong_fields_are_422_and_change_nothing(
    bw: World, flow: str, case: str, change: dict[str, Any], field: str
) -> None:
    before = everything(bw, flow)
    body = make_execution(flow)
    for key, value in change.items():
        if value is _DROP:
            del body[key]
        else:
            body[key] = value
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", json=body, headers=bearer("owner"))
    detail = assert_refused(r)
    assert names(detail, field), detail
    assert everything(bw, flow) == before


def test_every_missing_field_is_named(bw: World, flow: str) -> None:
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", json={}, headers=bearer("owner"))
    detail = assert_refused(r)
    assert isinstance(detail, list)
    missing = {e["loc"][-1] for e in detail if e["type"] == "missing"}
    assert missing == {"flow_id", "status", "execution_time"}


RAW_BODIES: dict[str, bytes] = {
    "empty": b"",
    "not json": b"this is not json",
    "truncated": b'{"flow_id": "x", "status": ',
    "array": b"[]",
    "null": b"null",
    "number": b"5",
    "string": b'"success"',
    "bad utf-8": b'{"flow_id": "FLOW", "status": "success", "execution_time": 1, "inputs": {"a": "\xff\xfe"}}',
    "bad utf-8 in a key": b'{"flow_id": "FLOW", "status": "success", "execution_time": 1, "\xc3\x28": 1}',
    "overlong utf-8": b'{"flow_id": "FLOW", "status": "success", "execution_time": 1, "inputs": {"a": "\xc0\xaf"}}',
    "surrogate in status": b'{"flow_id": "FLOW", "status": "\\ud83d", "execution_time": 1}',
    "nan": b'{"flow_id": "FLOW", "status": "success", "execution_time": NaN}',
    "depth 5000": b'{"flow_id": "FLOW", "status": "success", "execution_time": 1, "inputs": '
    + b'{"a": ' * 5000
    + b"1"
    + b"}" * 5000
    + b"}",
    "depth 5000 lists": b"[" * 5000 + b"]" * 5000,
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_unparseable_bodies_are_422(bw: World, flow: str, case: str) -> None:
    before = everything(bw, flow)
    body = RAW_BODIES[case].replace(b"FLOW", flow.encode())
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", content=body, headers={**bearer("owner"), **JSON})
    assert_refused(r)
    assert everything(bw, flow) == before


@pytest.mark.parametrize("field", ["inputs", "outputs", "node_results", "errors"])
@pytest.mark.parametrize("depth", [300, 1000])
def test_deeply_nested_payloads_are_422(bw: World, flow: str, field: str, depth: int) -> None:
    before = everything(bw, flow)
    body = json.dumps(make_execution(flow, **{field: "DEEP"})).replace('"DEEP"', nested_text(depth))
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", content=body, headers={**bearer("owner"), **JSON})
    detail = assert_refused(r)
    assert names(detail, field) or names(detail, "JSON decode error"), detail
    assert everything(bw, flow) == before


@pytest.mark.parametrize("depth", [300, 900])
def test_a_deep_value_refused_for_another_reason_is_422_not_echoed(bw: World, flow: str, depth: int) -> None:
    """A 422 echoes what it refuses: a value nested past orjson's 254 levels made the echo fail,
    and the 422 was a 500, on every JSON route, for any signed-in user."""
    before = everything(bw, flow)
    run = make_execution(flow, inputs="DEEP")
    del run["execution_time"]  # refused for that, with the deep inputs beside it
    body = json.dumps(run).replace('"DEEP"', "[" * depth + "]" * depth)
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", content=body, headers={**bearer("owner"), **JSON})
    assert names(assert_refused(r), "execution_time")
    for path in ("/api/v1/users", "/api/v1/executions/search"):  # the whole body deep where an object goes
        r = bw.client.post(path, content="[" * depth + "]" * depth, headers={**bearer("admin"), **JSON})
        assert assert_refused(r)[0]["input"] == "… (nested too deep to echo)"
    assert everything(bw, flow) == before


def test_moderate_nesting_is_stored_intact(bw: World, flow: str) -> None:
    deep = nested(100, "leaf")
    run = bw.post_run("owner", flow, inputs=deep)
    got = bw.client.get(f"/api/v1/flows/{flow}/executions/{run['id']}", headers=bearer("owner")).json()
    assert got["inputs"] == deep


@pytest.mark.parametrize("target", ["other readable flow", "unknown flow", "private flow"])
def test_body_flow_id_must_match_the_path(bw: World, flow: str, target: str) -> None:
    other = {"other readable flow": bw.public, "unknown flow": str(uuid.uuid4()), "private flow": bw.private}[
        target
    ]
    before_here = everything(bw, flow)
    before_there = everything(bw, bw.public)
    r = bw.client.post(
        f"/api/v1/flows/{flow}/executions", json=make_execution(other), headers=bearer("reader")
    )
    detail = assert_refused(r)
    assert names(detail, "flow_id"), detail
    assert everything(bw, flow) == before_here
    assert everything(bw, bw.public) == before_there
    # the same run posted under its own flow is fine where the caller may read
    if target == "other readable flow":
        r = bw.client.post(
            f"/api/v1/flows/{other}/executions", json=make_execution(other), headers=bearer("reader")
        )
        assert r.status_code == 200


def test_posting_a_run_checks_the_path_flow_before_the_body(bw: World, flow: str) -> None:
    """The contract's order on every execution route: the flow exists (404), may be read (403),
    then the rest; a body naming another flow was a 422 before either."""
    body = make_execution(flow)
    r = bw.client.post(f"/api/v1/flows/{uuid.uuid4()}/executions", json=body, headers=bearer("reader"))
    assert assert_refused(r, 404) == "Flow not found"
    r = bw.client.post(f"/api/v1/flows/{bw.private}/executions", json=body, headers=bearer("stranger"))
    assert assert_refused(r, 403) == "You do not have permission to access this flow"


def test_unknown_keys_are_ignored_and_cannot_spoof(bw: World, flow: str) -> None:
    spoof_id = str(uuid.uuid4())
    body = make_execution(
        flow, colour="blue", id=spoof_id, user_id="admin", created_at=1_000_000, extra={"x": [1, 2]}
    )
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", json=body, headers=bearer("reader"))
    assert r.status_code == 200, r.text
    run = r.json()
    assert "colour" not in run and "extra" not in run
    assert run["user_id"] == "reader"
    assert run["id"] != spoof_id
    assert run["created_at"] > 1_600_000_000
    got = bw.client.get(f"/api/v1/flows/{flow}/executions/{run['id']}", headers=bearer("reader")).json()
    assert got == run
    assert (
        bw.client.get(f"/api/v1/flows/{flow}/executions/{spoof_id}", headers=bearer("owner")).status_code
        == 404
    )


@pytest.mark.parametrize("value", [0, 2**53])
def test_execution_time_bounds_are_accepted(bw: World, flow: str, value: int) -> None:
    run = bw.post_run("owner", flow, execution_time=value)
    got = bw.client.get(f"/api/v1/flows/{flow}/executions/{run['id']}", headers=bearer("owner")).json()
    assert got["execution_time"] == value


# --- body size --------------------------------------------------------------------------------

LIMIT = 4096


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = _settings(tmp_path_factory.mktemp("small"))
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield build_world(client)


def body_of_size(flow_id: str, size: int) -> bytes:
    run = make_execution(flow_id, inputs={"prompt": ""})
    pad = size - len(orjson.dumps(run))
    assert pad >= 0
    run["inputs"]["prompt"] = "x" * pad
    body = orjson.dumps(run)
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_413(small: World, chunked: bool) -> None:
    fid = small.shared
    before = everything(small, fid)
    body = body_of_size(fid, LIMIT + 1)
    content: Any = chunks(body) if chunked else body
    r = small.client.post(
        f"/api/v1/flows/{fid}/executions", content=content, headers={**bearer("owner"), **JSON}
    )
    assert ("content-length" in r.request.headers) is not chunked
    detail = assert_refused(r, 413)
    assert str(LIMIT) in detail
    assert everything(small, fid) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_much_larger_body_is_413(small: World, chunked: bool) -> None:
    fid = small.shared
    before = everything(small, fid)
    body = body_of_size(fid, 50 * LIMIT)
    for url in (f"/api/v1/flows/{fid}/executions", "/api/v1/executions/batch", "/api/v1/flows/create"):
        content: Any = chunks(body, 4000) if chunked else body
        r = small.client.post(url, content=content, headers={**bearer("owner"), **JSON})
        assert_refused(r, 413)
    assert everything(small, fid) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_at_the_limit_is_accepted(small: World, chunked: bool) -> None:
    fid = small.shared
    for size in (LIMIT - 1, LIMIT):
        body = body_of_size(fid, size)
        content: Any = chunks(body) if chunked else body
        r = small.client.post(
            f"/api/v1/flows/{fid}/executions", content=content, headers={**bearer("owner"), **JSON}
        )
        assert r.status_code == 200, r.text
        got = small.client.get(f"/api/v1/flows/{fid}/executions/{r.json()['id']}", headers=bearer("owner"))
        assert got.json()["inputs"] == orjson.loads(body)["inputs"]


def test_an_image_run_of_tens_of_mb_is_stored_by_default(world: World) -> None:
    """PEER_CONTRACT: an image model's base64 data URI can make a single POST tens of MB (spread
    one key a character, and copied into outputs): 1.6 million characters, a 42 MB body, over
    the old 32 MiB default, is stored and answered whole with the default settings."""
    uri = "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 4_700).decode()
    node = {**{str(i): c for i, c in enumerate(uri)}, "label": "Image", "modelId": "dall-e-3"}
    fid = world.new_flow(name="images")
    body = orjson.dumps(
        {"flow_id": fid, "status": "success", "execution_time": 9000, "inputs": {"prompt": "a cat"},
         "outputs": {"model_1": node}, "node_results": {"model_1": node}}
    )  # fmt: skip
    assert len(body) > 40 * 2**20
    r = world.client.post(
        f"/api/v1/flows/{fid}/executions", content=body, headers={**bearer("owner"), **JSON}
    )
    assert r.status_code == 200, r.text[:200]
    got = detail(world, fid, r.json()["id"]).json()
    assert got["node_results"] == {"model_1": node} and got["outputs"] == got["node_results"]


# --- list parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", ""])
def test_bad_page_is_422(bw: World, flow: str, page: str) -> None:
    r = bw.client.get(f"/api/v1/flows/{flow}/executions?page={page}", headers=bearer("owner"))
    detail = assert_refused(r)
    assert names(detail, "page"), detail


@pytest.mark.parametrize("page", [10**6, 2**62, 2**63 - 1, 10**20])
def test_page_far_past_the_end_is_empty_or_422_never_500(bw: World, flow: str, page: int) -> None:
    r = bw.client.get(f"/api/v1/flows/{flow}/executions?page={page}", headers=bearer("owner"))
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json() == []
    else:
        assert names(r.json()["detail"], "page")


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = {
    "not base64": "!!!",
    "short": "abc",
    "base64 of text": _cursor(b"hello"),
    "json null": _cursor(b"null"),
    "json object": _cursor(b'{"t": 1}'),
    "one element": _cursor(b"[1]"),
    "three elements": _cursor(b'[1, "a", 2]'),
    "id not a uuid": _cursor(b'[1, "not-a-uuid"]'),
    "id a number": _cursor(b"[1, 2]"),
    "id null": _cursor(b"[1, null]"),
    "time a string": _cursor(orjson.dumps(["x", str(uuid.uuid4())])),
    "time a float": _cursor(orjson.dumps([1.5, str(uuid.uuid4())])),
    "time a bool": _cursor(orjson.dumps([True, str(uuid.uuid4())])),
    "time huge": _cursor(orjson.dumps([2**63 - 1, str(uuid.uuid4())])),
    "time negative huge": _cursor(orjson.dumps([-(2**62), str(uuid.uuid4())])),
    "bad utf-8": _cursor(b'[1, "\xff"]'),
}


@pytest.mark.parametrize("case", list(BAD_CURSORS))
def test_bad_cursor_is_422_naming_cursor(bw: World, flow: str, case: str) -> None:
    r = bw.client.get(
        f"/api/v1/flows/{flow}/executions/list", params={"cursor": BAD_CURSORS[case]}, headers=bearer("owner")
    )
    detail = assert_refused(r)
    assert names(detail, "cursor"), detail


def test_overlong_cursor_is_422(bw: World, flow: str) -> None:
    r = bw.client.get(
        f"/api/v1/flows/{flow}/executions/list", params={"cursor": "A" * 600}, headers=bearer("owner")
    )
    assert names(assert_refused(r), "cursor")


@pytest.mark.parametrize("limit", ["0", "-5", "501", "100000", "abc", "2.5"])
def test_bad_limit_is_422(bw: World, flow: str, limit: str) -> None:
    r = bw.client.get(f"/api/v1/flows/{flow}/executions/list?limit={limit}", headers=bearer("owner"))
    detail = assert_refused(r)
    assert names(detail, "limit"), detail


def test_limit_at_the_max_is_fine(bw: World, flow: str) -> None:
    r = bw.client.get(f"/api/v1/flows/{flow}/executions/list?limit=500", headers=bearer("owner"))
    assert r.status_code == 200
    assert r.json()["total"] == 3


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/flows/{flow}/executions/stats?from=2030-01-01&start=2020-01-01",  # `from` for `start`
        "/api/v1/flows/{flow}/executions?page=1&from=2030-01-01",  # the peer's list
        "/api/v1/flows/{flow}/reliability?from=2030-01-01",
        "/api/v1/cost?from=2030-01-01&start=2026-01-01&end=2026-02-01",
        "/api/v1/flows/{flow}/executions/download?from=2030-01-01",
        "/api/v1/flows/accessible?from=2030-01-01",
    ],
)
def test_a_query_parameter_the_route_does_not_read_is_422_naming_it(bw: World, flow: str, path: str) -> None:
    """A misspelled filter must not answer unfiltered numbers as if it were applied."""
    r = bw.client.get(path.format(flow=flow), headers=bearer("owner"))
    detail = assert_refused(r)
    assert names(detail, "from"), detail
    assert "Unknown query parameter 'from'" in detail[0]["msg"]
    assert r.headers["content-type"].startswith("application/json")
    # the same request without it is answered
    ok = bw.client.get(
        path.format(flow=flow).replace("from=2030-01-01", "").replace("?&", "?"), headers=bearer("owner")
    )
    assert ok.status_code == 200, ok.text


def test_an_unknown_query_parameter_without_a_credential_is_the_401(bw: World, flow: str) -> None:
    """Not a 422 that tells an anonymous caller what the route reads."""
    r = bw.client.get(f"/api/v1/flows/{flow}/executions?page=1&page_size=1")
    assert r.status_code == 401 and "reads" not in r.text, r.text


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/executions/search", "/api/v1/alerts/rules"])
def test_a_body_that_is_not_json_without_a_credential_is_the_401(bw: World, path: str) -> None:
    """FastAPI parses a body before the credential is asked for: `{` answered its JSON decode
    error to an anonymous caller, where `{}` answered the 401."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = bw.client.post(path, content=b"{", headers={**headers, **JSON})
        assert r.status_code == 401, r.text
    r = bw.client.post(path, content=b"{", headers={**bearer("admin"), **JSON})
    assert assert_refused(r)[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/flows/{flow}/executions?page=1&_=1733550000000", "/api/v1/flows/?_=1", "/api/v1/users/me?_="],
)
def test_a_cache_buster_is_ignored(bw: World, flow: str, path: str) -> None:
    """jQuery's `_=` (the peer ignores every parameter it does not read) was a 422."""
    r = bw.client.get(path.format(flow=flow), headers=bearer("owner"))
    assert r.status_code == 200, r.text


def test_unknown_query_parameters_change_nothing(bw: World, flow: str) -> None:
    before = everything(bw, flow)
    r = bw.client.delete(f"/api/v1/flows/{flow}/executions?dry_run=true", headers=bearer("owner"))
    assert names(assert_refused(r), "dry_run")
    assert everything(bw, flow) == before  # nothing was deleted


@pytest.mark.parametrize("keep", ["-1", "abc", str(10**20), str(2**63)])
def test_bad_cleanup_keep_is_4xx_and_deletes_nothing(bw: World, flow: str, keep: str) -> None:
    before = everything(bw, flow)
    r = bw.client.post(f"/api/v1/flows/{flow}/executions/cleanup?keep={keep}", headers=bearer("owner"))
    if r.status_code == 200:  # a keep larger than any flow may mean "keep everything"
        assert r.json() == {"deleted": 0, "kept": 3}
    else:
        assert names(assert_refused(r), "keep")
    assert everything(bw, flow) == before


# --- execution ids and check order ------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "%20", "x" * 300, str(uuid.UUID(int=410))])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_execution_is_404(bw: World, flow: str, bad_id: str, method: str) -> None:
    before = everything(bw, flow)
    r = bw.client.request(method, f"/api/v1/flows/{flow}/executions/{bad_id}", headers=bearer("owner"))
    assert assert_refused(r, 404) == "Execution not found"
    assert everything(bw, flow) == before


@pytest.mark.parametrize("tail", ["%0A", "%0D", "%00", "%09", "%7F"])
def test_a_path_with_a_control_character_matches_no_route(bw: World, flow: str, tail: str) -> None:
    """Python's `$` matches before a final newline: `executions%0A` reached the delete route."""
    before = everything(bw, flow)
    for method, path in (
        ("DELETE", f"/api/v1/flows/{flow}/executions{tail}"),
        ("GET", f"/api/v1/flows/{tail}"),
        ("GET", f"/api/v1/flows/accessible{tail}"),
        ("GET", f"/api/v1/flows/{flow}/executions/stats{tail}"),
        ("GET", f"/api/v1/flows/{flow}{tail}/export"),
    ):
        r = bw.client.request(method, path, headers=bearer("owner"))
        assert assert_refused(r, 404) == "Not Found", (method, path)
    assert everything(bw, flow) == before


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_execution_of_another_flow_is_404_for_this_flow(bw: World, flow: str, method: str) -> None:
    elsewhere = bw.post_run("owner", bw.public)
    before = everything(bw, bw.public)
    r = bw.client.request(
        method, f"/api/v1/flows/{flow}/executions/{elsewhere['id']}", headers=bearer("owner")
    )
    assert assert_refused(r, 404) == "Execution not found for this flow"
    assert everything(bw, bw.public) == before  # a DELETE through the wrong flow deletes nothing
    r = bw.client.get(f"/api/v1/flows/{bw.public}/executions/{elsewhere['id']}", headers=bearer("owner"))
    assert r.status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_check_order_flow_then_access_then_execution(bw: World, flow: str, method: str) -> None:
    missing_flow = str(uuid.uuid4())
    elsewhere = bw.post_run("owner", flow)["id"]
    h_stranger = bearer("stranger")
    for execution in ("not-a-uuid", str(uuid.uuid4()), elsewhere):
        # 1. no such flow: 404 for the flow, whatever the execution
        r = bw.client.request(
            method, f"/api/v1/flows/{missing_flow}/executions/{execution}", headers=h_stranger
        )
        assert assert_refused(r, 404) == "Flow not found"
        # 2. a flow the caller may not read (or, for DELETE, write): 403 before any execution lookup
        r = bw.client.request(
            method, f"/api/v1/flows/{bw.private}/executions/{execution}", headers=h_stranger
        )
        assert assert_refused(r, 403) == "You do not have permission to access this flow"
    if method == "DELETE":
        # a reader may read but not write: 403 even for an execution that does not exist
        r = bw.client.delete(f"/api/v1/flows/{flow}/executions/{uuid.uuid4()}", headers=bearer("reader"))
        assert assert_refused(r, 403)
    # 3. the flow is accessible: now the execution decides
    r = bw.client.request(
        method, f"/api/v1/flows/{bw.private}/executions/{elsewhere}", headers=bearer("owner")
    )
    assert assert_refused(r, 404) == "Execution not found for this flow"


def test_stats_and_list_routes_are_not_taken_as_execution_ids(bw: World, flow: str) -> None:
    stats = bw.client.get(f"/api/v1/flows/{flow}/executions/stats", headers=bearer("owner"))
    assert stats.status_code == 200 and stats.json()["total_executions"] == 3
    page = bw.client.get(f"/api/v1/flows/{flow}/executions/list", headers=bearer("owner"))
    assert page.status_code == 200 and page.json()["total"] == 3


# --- batch ingest -------------------------------------------------------------------------------


def batch(w: World, user: str, content: Any, *, ndjson: bool = False) -> dict[str, Any]:
    ctype = "application/x-ndjson" if ndjson else "application/json"
    body = content if isinstance(content, bytes) else json.dumps(content).encode()
    r = w.client.post(
        "/api/v1/executions/batch", content=body, headers={**bearer(user), "Content-Type": ctype}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert [i["index"] for i in out["items"]] == list(range(len(out["items"])))
    assert out["stored"] == sum(i["status"] == "stored" for i in out["items"])
    assert out["refused"] == sum(i["status"] == "refused" for i in out["items"])
    for item in out["items"]:
        if item["status"] == "refused":
            assert isinstance(item["detail"], str) and item["detail"]
            assert item["id"] is None
        else:
            uuid.UUID(item["id"])
    return out


def detail(w: World, fid: str, run_id: str, user: str = "owner") -> Response:
    return w.client.get(f"/api/v1/flows/{fid}/executions/{run_id}", headers=bearer(user))


def test_batch_mixed_good_and_bad_items(bw: World, flow: str) -> None:
    owned_by_stranger = bw.new_flow("stranger", name="theirs", access_control={})
    stats_before = bw.client.get(f"/api/v1/flows/{flow}/executions/stats", headers=bearer("owner")).json()
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    items: list[tuple[Any, str | None]] = [
        (make_execution(flow, text="first good"), None),
        (make_execution(flow, status="done"), "status"),
        (make_execution(flow, status=3), "status"),
        (make_execution(flow, execution_time=-5), "execution_time"),
        (make_execution(flow, execution_time="abc"), "execution_time"),
        (make_execution(flow, execution_time=1.5), "execution_time"),
        (make_execution(flow, execution_time=True), "execution_time"),
        (make_execution(flow, execution_time="1_000"), "not a string"),
        (make_execution(flow, inputs=[1]), "inputs"),
        ({k: v for k, v in make_execution(flow).items() if k != "flow_id"}, "flow_id"),
        (make_execution(str(uuid.uuid4())), "Flow not found"),
        (make_execution(owned_by_stranger), "permission"),
        (make_execution(flow, node_results=nested(300)), "node_results"),
        (make_execution(flow, created_at=future), "created_at"),
        (make_execution(flow, created_at="yesterday"), "created_at"),
        (make_execution(flow, user_id="admin"), "another user"),
        (make_execution(flow, id="not-a-uuid"), "id"),
        (5, None),
        ("a string", None),
        (None, None),
        ([make_execution(flow)], None),
        (make_execution(flow, text="second good", status="aborted"), None),
    ]
    out = batch(bw, "owner", [item for item, _ in items])
    assert out["stored"] == 2
    assert out["refused"] == len(items) - 2
    for (_, reason), result in zip(items, out["items"], strict=True):
        if result["status"] == "refused" and reason is not None:
            assert reason in result["detail"], result
    good = [out["items"][0], out["items"][-1]]
    assert [g["status"] for g in good] == ["stored", "stored"]
    first = detail(bw, flow, good[0]["id"]).json()
    assert first["node_results"]["model_1739905519876_k3j9x2abq"]["0"] == "f"
    assert first["user_id"] == "owner" and first["flow_id"] == flow
    assert detail(bw, flow, good[1]["id"]).json()["status"] == "aborted"
    stats = bw.client.get(f"/api/v1/flows/{flow}/executions/stats", headers=bearer("owner")).json()
    assert stats["total_executions"] == stats_before["total_executions"] + 2
    assert stats["aborted_count"] == stats_before["aborted_count"] + 1
    theirs = bw.client.get(f"/api/v1/flows/{owned_by_stranger}/executions/stats", headers=bearer("stranger"))
    assert theirs.json()["total_executions"] == 0


def test_batch_ndjson_with_a_bad_line(bw: World, flow: str) -> None:
    lines = [
        orjson.dumps(make_execution(flow, text="one")),
        b'{"flow_id": "oops", this is not json',
        b"",  # blank lines are skipped
        orjson.dumps(make_execution(flow, text="two")),
        b'{"flow_id": "\xff"}',
    ]
    out = batch(bw, "owner", b"\n".join(lines) + b"\n", ndjson=True)
    assert [i["status"] for i in out["items"]] == ["stored", "refused", "stored", "refused"]
    assert "line 2" in out["items"][1]["detail"]
    assert "line 5" in out["items"][3]["detail"]
    for item in (out["items"][0], out["items"][2]):
        assert detail(bw, flow, item["id"]).status_code == 200


def test_batch_json_array_that_is_not_json_is_422(bw: World, flow: str) -> None:
    before = everything(bw, flow)
    for body in (b'[{"flow_id": ', b'[{"a": "\xff"}]'):
        r = bw.client.post("/api/v1/executions/batch", content=body, headers={**bearer("owner"), **JSON})
        assert_refused(r)
    # an array whose one item is nested past the reader's limit: that item refused, nothing stored
    r = bw.client.post(
        "/api/v1/executions/batch", content=b"[" * 5000 + b"]" * 5000, headers={**bearer("owner"), **JSON}
    )
    assert r.status_code == 200 and (r.json()["stored"], r.json()["refused"]) == (0, 1), r.text
    assert everything(bw, flow) == before


@pytest.mark.parametrize("body", [b"hello", b'{"a":', b'  {"flow_id": "x", \n', b'{"a": "\xff"}'])
def test_a_json_batch_body_that_is_one_line_and_not_json_is_422(bw: World, flow: str, body: bytes) -> None:
    """Not starting with `[`, it was read as NDJSON: a 200 with one refused line, where the README
    says a body that is not JSON at all is a 422. Two lines stay NDJSON, each judged."""
    before = everything(bw, flow)
    r = bw.client.post("/api/v1/executions/batch", content=body, headers={**bearer("owner"), **JSON})
    assert assert_refused(r) and "JSON" in r.text, r.text
    run = orjson.dumps(make_execution(flow))
    r = bw.client.post(
        "/api/v1/executions/batch", content=body.rstrip() + b"\n" + run, headers={**bearer("owner"), **JSON}
    )
    assert r.status_code == 200 and (r.json()["stored"], r.json()["refused"]) == (1, 1), r.text
    r = bw.client.post("/api/v1/executions/batch", content=run + b"\n", headers={**bearer("owner"), **JSON})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text  # one object: a batch of one
    # a second line of \x0c (not JSON's whitespace) keeps it NDJSON: a run and a refused line
    r = bw.client.post(
        "/api/v1/executions/batch", content=run + b"\n\x0c", headers={**bearer("owner"), **JSON}
    )
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    assert everything(bw, flow)[0]["total_executions"] == before[0]["total_executions"] + 3


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_json_batch_body_that_is_one_pretty_printed_run_is_a_batch_of_one(
    bw: World, flow: str, newline: bytes
) -> None:
    """A run object pretty-printed (as `json.dumps(run, indent=2)` writes it) was read as NDJSON
    of its broken lines: a 200 refusing 40-odd lines and storing nothing. One document on many
    lines is one run, as on one line; its payload is kept exactly."""
    run = make_execution(flow, outputs={"text": "two\nlines", "n": 1.5, "deep": {"a": [1, {"b": None}]}})
    body = json.dumps(run, indent=2).encode().replace(b"\n", newline)
    r = bw.client.post("/api/v1/executions/batch", content=body, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200 and (r.json()["stored"], r.json()["refused"]) == (1, 0), r.text
    stored = detail(bw, flow, r.json()["items"][0]["id"]).json()
    assert stored["outputs"] == run["outputs"] and stored["inputs"] == run["inputs"]
    # a pretty-printed item that breaks a rule is that one item refused, saying why
    bad = json.dumps({**make_execution(flow), "status": "maybe"}, indent=2).encode()
    r = bw.client.post("/api/v1/executions/batch", content=bad, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200 and (r.json()["stored"], r.json()["refused"]) == (0, 1), r.text
    assert "status" in r.json()["items"][0]["detail"]
    # lines that are not one document stay NDJSON, each judged
    two = b"{\n" + orjson.dumps(make_execution(flow)) + b"\n"
    r = bw.client.post("/api/v1/executions/batch", content=two, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200 and (r.json()["stored"], r.json()["refused"]) == (1, 1), r.text


def test_batch_duplicate_and_existing_ids_are_refused(bw: World, flow: str) -> None:
    existing = bw.post_run("owner", flow, execution_time=7)
    dup = str(uuid.uuid4())
    out = batch(
        bw,
        "owner",
        [
            make_execution(flow, id=dup, execution_time=1),
            make_execution(flow, id=dup, execution_time=2),
            make_execution(flow, id=existing["id"], execution_time=3, status="error"),
            make_execution(flow, id=existing["id"].upper(), execution_time=4),
        ],
    )
    assert [i["status"] for i in out["items"]] == ["stored", "refused", "refused", "refused"]
    assert out["items"][0]["id"] == dup
    assert "twice" in out["items"][1]["detail"]
    assert "already exists" in out["items"][2]["detail"]
    assert detail(bw, flow, dup).json()["execution_time"] == 1
    kept = detail(bw, flow, existing["id"]).json()
    assert kept == existing  # the stored run is untouched
    # and again, the id that is now stored is refused in a later batch
    again = batch(bw, "owner", [make_execution(flow, id=dup)])
    assert again["items"][0]["status"] == "refused"
    assert "already exists" in again["items"][0]["detail"]


def test_batch_user_id_only_for_admins(bw: World, flow: str) -> None:
    out = batch(
        bw,
        "owner",
        [make_execution(flow, user_id="reader"), make_execution(flow, user_id="owner")],
    )
    assert [i["status"] for i in out["items"]] == ["refused", "stored"]
    assert "another user" in out["items"][0]["detail"]
    assert detail(bw, flow, out["items"][1]["id"]).json()["user_id"] == "owner"
    out = batch(bw, "admin", [make_execution(flow, user_id="reader")])
    assert out["items"][0]["status"] == "stored"
    run = detail(bw, flow, out["items"][0]["id"], user="reader").json()
    assert run["user_id"] == "reader"  # and the reader sees it as theirs


@pytest.mark.parametrize("field", ["user_id", "flow_version"])
@pytest.mark.parametrize("ndjson", [False, True])
def test_batch_names_without_control_characters(bw: World, flow: str, field: str, ndjson: bool) -> None:
    """A user id with a NUL or a terminal escape was stored (the bulk and the one-by-one path
    alike) under an id no user can have, then listed in facets, cost by user and exports."""
    before = everything(bw, flow)
    bad = [make_execution(flow, **{field: v}) for v in ("evil\x00user", "a\nb", "x\x1b[31m", "p\u2028q")]
    items = [*bad, make_execution(flow, **{field: "fine"})]
    content = b"\n".join(orjson.dumps(i) for i in items) if ndjson else items
    out = batch(bw, "admin", content, ndjson=ndjson)
    assert [i["status"] for i in out["items"]] == ["refused"] * 4 + ["stored"]
    assert all(field in i["detail"] and "control characters" in i["detail"] for i in out["items"][:4])
    assert everything(bw, flow)[0]["total_executions"] == before[0]["total_executions"] + 1


@pytest.mark.parametrize("ndjson", [False, True])
def test_a_batch_user_id_follows_the_users_rule(bw: World, flow: str, ndjson: bool) -> None:
    """`..` and `.` were stored as a run's user (the users API refuses them: a URL resolves them
    away), then listed in facets and cost by user under a user no one can be or name."""
    before = everything(bw, flow)
    items = [make_execution(flow, user_id=v) for v in ("..", ".", "..x")]
    content = b"\n".join(orjson.dumps(i) for i in items) if ndjson else items
    out = batch(bw, "admin", content, ndjson=ndjson)
    assert [i["status"] for i in out["items"]] == ["refused", "refused", "stored"], out
    assert all("user_id" in i["detail"] and "'..'" in i["detail"] for i in out["items"][:2])
    assert everything(bw, flow)[0]["total_executions"] == before[0]["total_executions"] + 1


@pytest.mark.parametrize(
    ("created_at", "epoch"),
    [
        (1_700_000_000, 1_700_000_000),
        (1_700_000_000.75, 1_700_000_000),
        ("2024-01-02T03:04:05", 1_704_164_645),
        ("2024-01-02T03:04:05Z", 1_704_164_645),
        ("2024-01-02T03:04:05+02:00", 1_704_157_445),
        ("2024-01-02T03:04:05.123456", 1_704_164_645),
        (-62_135_596_800, -62_135_596_800),  # 0001-01-01: was read as milliseconds (1968)
        ("0001-01-01T01:00:00+01:00", -62_135_596_800),
        (-1.5, -2),
    ],
)
def test_batch_created_at_is_kept(bw: World, flow: str, created_at: Any, epoch: int) -> None:
    out = batch(bw, "owner", [make_execution(flow, created_at=created_at)])
    assert out["items"][0]["status"] == "stored", out
    run_id = out["items"][0]["id"]
    assert detail(bw, flow, run_id).json()["created_at"] == epoch
    rows = bw.client.get(f"/api/v1/flows/{flow}/executions", headers=bearer("owner")).json()
    assert next(r for r in rows if r["id"] == run_id)["created_at"] == epoch
    # an old run sorts after every run saved today
    assert rows[-1]["id"] == run_id


def test_batch_created_at_far_future_is_refused(bw: World, flow: str) -> None:
    before = everything(bw, flow)
    out = batch(
        bw,
        "owner",
        [
            make_execution(flow, created_at=4_000_000_000),
            make_execution(flow, created_at="2999-01-01T00:00:00"),
        ],
    )
    assert out["stored"] == 0
    assert all("created_at" in i["detail"] for i in out["items"])
    assert everything(bw, flow) == before


def test_batch_item_with_deep_errors_is_refused_alone(bw: World, flow: str) -> None:
    """A payload that breaks node-fact extraction is one refused item, not a 500 for the batch."""
    deep_errors = json.dumps(make_execution(flow, errors="DEEP")).replace('"DEEP"', nested_text(1000))
    body = f"[{json.dumps(make_execution(flow, text='kept'))}, {deep_errors}]".encode()
    r = bw.client.post("/api/v1/executions/batch", content=body, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["status"] for i in items] == ["stored", "refused"]
    assert "errors" in items[1]["detail"]
    assert detail(bw, flow, items[0]["id"]).status_code == 200


def _token_bomb(flow_id: str) -> dict[str, Any]:
    """Two nodes whose token counts each fit in int64 but whose sum does not."""
    usage = {"prompt_tokens": 2**62, "completion_tokens": 2**62}
    nodes = {"model_1_a": {"modelId": "m", "usage": usage}, "model_2_b": {"modelId": "m", "usage": usage}}
    return make_execution(flow_id, node_results=nodes, outputs=nodes)


def test_token_counts_too_large_to_sum_are_not_a_500(bw: World, flow: str) -> None:
    before = everything(bw, flow)
    r = bw.client.post(f"/api/v1/flows/{flow}/executions", json=_token_bomb(flow), headers=bearer("owner"))
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"]
        assert everything(bw, flow) == before
    else:
        assert detail(bw, flow, r.json()["id"]).json()["node_results"] == _token_bomb(flow)["node_results"]


def test_batch_good_items_survive_a_token_bomb(bw: World, flow: str) -> None:
    out = batch(bw, "owner", [make_execution(flow, text="kept"), _token_bomb(flow)])
    assert out["items"][0]["status"] == "stored", out
    assert detail(bw, flow, out["items"][0]["id"]).status_code == 200


def test_batch_empty_is_fine(bw: World) -> None:
    assert batch(bw, "owner", []) == {"stored": 0, "refused": 0, "items": []}


def test_batch_too_many_items_is_422(tmp_path: Any) -> None:
    app = create_app(_settings(tmp_path, batch_max_items=3))
    with TestClient(app, raise_server_exceptions=False) as client:
        w = build_world(client)
        r = client.post(
            "/api/v1/executions/batch", json=[make_execution(w.shared)] * 4, headers=bearer("owner")
        )
        assert "at most 3" in assert_refused(r)
        stats = client.get(f"/api/v1/flows/{w.shared}/executions/stats", headers=bearer("owner")).json()
        assert stats["total_executions"] == 0


def test_library_save_refuses_like_the_api(bw: World, flow: str) -> None:
    """The library's E1 refuses a mismatched flow id too (no HTTP involved)."""
    before = everything(bw, flow)
    with pytest.raises(ValueError, match="flow_id"):
        ingest.save_execution(bw.ctx, Viewer("owner"), make_execution(bw.public), flow_id=flow)
    assert everything(bw, flow) == before


# --- bad input on the flow routes: still never a 500 --------------------------------------------


FLOW_BODIES: dict[str, bytes] = {
    "nodes nested 300": json.dumps({"name": "deep", "nodes": [nested(300)]}).encode(),
    "meta nested 300": json.dumps({"name": "deep", "meta": nested(300)}).encode(),
    "bad utf-8": b'{"name": "\xff"}',
    "depth 5000": b'{"name": "x", "nodes": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "not json": b"name=x",
    "nodes not a list": b'{"name": "x", "nodes": "x"}',
    "bad access_control": b'{"name": "x", "access_control": {"read": 5}}',
    "access_control unknown mode": b'{"name": "x", "access_control": {"admin": {}}}',
}


@pytest.mark.parametrize("case", list(FLOW_BODIES))
@pytest.mark.parametrize("route", ["create", "update"])
def test_bad_flow_bodies_are_4xx(bw: World, case: str, route: str) -> None:
    target = bw.new_flow(name="target")
    before = bw.client.get(f"/api/v1/flows/{target}", headers=bearer("owner")).json()
    count = len(bw.ctx.directory.flows())
    url = "/api/v1/flows/create" if route == "create" else f"/api/v1/flows/{target}"
    r = bw.client.post(url, content=FLOW_BODIES[case], headers={**bearer("owner"), **JSON})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]
    assert len(bw.ctx.directory.flows()) == count
    assert bw.client.get(f"/api/v1/flows/{target}", headers=bearer("owner")).json() == before


@pytest.mark.parametrize("user_id", ["\ud800", "ok\udc00"])
def test_token_with_a_lone_surrogate_id_is_401(bw: World, user_id: str) -> None:
    r = bw.client.get("/api/v1/users/me", headers=bearer(user_id))
    assert r.status_code == 401, r.text
    assert r.json()["detail"]


def test_lone_surrogates_are_refused_in_names_and_ids(world: World) -> None:
    """orjson parses every body: outside runs and flows (where the editor's spread of an emoji
    writes halves: tests/api/test_surrogate_halves.py) a lone surrogate is refused."""
    admin = bearer("admin")
    for path in ("/api/v1/users", "/api/v1/groups", "/api/v1/keys"):
        body = b'{"id": "x", "name": "\\ud800", "user_id": "owner"}'
        r = world.client.post(path, content=body, headers={**admin, "content-type": "application/json"})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "user_id",
    [".", "..", "x/..", "x/../bob", "./x", "x/./y", "x/%2e%2e/bob", "x/%2E./bob", "y\\..\\bob", "v#x", "v?"],
)
def test_a_user_id_that_no_url_can_name_is_refused(world: World, user_id: str) -> None:
    """A client resolves `.` and `..` segments in `/api/v1/users/{id}`: such a user was created
    and then could never be demoted or set pending, and a PATCH of `x/../bob` sent as it is
    changed bob."""
    admin = bearer("admin")
    r = world.client.post("/api/v1/users", json={"id": user_id, "role": "user"}, headers=admin)
    assert "user id must have no '.' or '..' segment" in assert_refused(r)
    assert world.client.get("/api/v1/flows/", headers=bearer(user_id)).status_code == 401  # no auto-creation
    assert user_id not in {u["id"] for u in world.client.get("/api/v1/users", headers=admin).json()}


@pytest.mark.parametrize("user_id", ["a/b", "/", "a/..b", "..a/b.", "[red]x[/red]"])
def test_a_user_id_holding_a_slash_can_be_changed(world: World, user_id: str) -> None:
    """`a/b` was created and then never found: PATCH /api/v1/users/a%2Fb answered 404."""
    admin = bearer("admin")
    assert (
        world.client.post("/api/v1/users", json={"id": user_id, "role": "user"}, headers=admin).status_code
        == 200
    )
    r = world.client.patch(
        f"/api/v1/users/{quote(user_id, safe='')}", json={"role": "pending"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["id"] == user_id and r.json()["role"] == "pending", r.text
    roles = {u["id"]: u["role"] for u in world.client.get("/api/v1/users", headers=admin).json()}
    assert roles[user_id] == "pending"


LATE, EARLY = "2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z"
_REVERSED_FILTER = {"created_at": {"after_": LATE, "before_": EARLY}}


def _reversed_requests(fid: str, start: str, end: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every route taking a time range, asked for [start, end)."""
    span = {"start": start, "end": end}
    flow_filter = {"created_at": {"after_": start, "before_": end}}
    metrics = {"measures": ["runs"], **span}
    return {
        "stats": ("GET", f"/api/v1/flows/{fid}/executions/stats", {"params": span}),
        "trend": ("GET", f"/api/v1/flows/{fid}/trend", {"params": {"measures": "runs", **span}}),
        "metrics": ("POST", "/api/v1/metrics", {"json": metrics}),
        "nodes": ("GET", f"/api/v1/flows/{fid}/nodes", {"params": span}),
        "failures": ("GET", f"/api/v1/flows/{fid}/failures", {"params": span}),
        "reliability": ("GET", f"/api/v1/flows/{fid}/reliability", {"params": span}),
        "cost": ("GET", "/api/v1/cost", {"params": span}),
        "search": ("POST", "/api/v1/executions/search", {"json": {"filter": flow_filter}}),
        "count": ("POST", "/api/v1/executions/count", {"json": {"filter": flow_filter}}),
        "metrics filter": (
            "POST",
            "/api/v1/metrics",
            {"json": {"measures": ["runs"], "start": EARLY, "end": LATE, "filter": flow_filter}},
        ),
        "download": (
            "GET",
            f"/api/v1/flows/{fid}/executions/download",
            {"params": {"filter": json.dumps(flow_filter)}},
        ),
    }


@pytest.mark.parametrize("order", ["reversed", "empty"])
@pytest.mark.parametrize("route", list(_reversed_requests("f", LATE, EARLY)))
def test_a_range_ending_before_it_starts_is_a_message(bw: World, flow: str, route: str, order: str) -> None:
    """README: a 422 for a request that fits but means something impossible, such as a range
    ending before it starts, is a message (not FastAPI's list), naming the request's own fields."""
    start, end = (LATE, EARLY) if order == "reversed" else (LATE, LATE)
    method, path, kwargs = _reversed_requests(flow, start, end)[route]
    r = bw.client.request(method, path, headers=bearer("owner"), **kwargs)
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str), detail
    if route in ("search", "count", "metrics filter", "download"):
        assert "after_ must be earlier than before_" in detail and "created_at" in detail, detail
    else:
        assert "start" in detail and "end" in detail and "after_" not in detail, detail


def test_an_execution_time_range_in_the_wrong_order_is_a_message(bw: World, flow: str) -> None:
    body = {"filter": {"execution_time": {"ge_": 10, "le_": 5}}}
    r = bw.client.post("/api/v1/executions/search", json=body, headers=bearer("owner"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "filter.execution_time: ge_ must not be greater than le_"


# --- times outside datetime's range (years 1-9999) ----------------------------------------------

# each in years 1-9999 as written, outside them once converted to UTC
OFF_THE_CALENDAR = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:30:00-01:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
]


def _time_requests(fid: str, t: str) -> dict[str, tuple[str, str, dict[str, Any], tuple[str, ...]]]:
    """Every request taking a time, with `t` as that time: (method, path, kwargs, the error's loc)."""
    later = "2027-01-01T00:00:00Z"
    before = {"filter": {"created_at": {"before_": t}}}
    after = {"filter": {"created_at": {"after_": t}}}
    out: dict[str, tuple[str, str, dict[str, Any], tuple[str, ...]]] = {}
    for name, path in (
        ("stats", f"/api/v1/flows/{fid}/executions/stats"),
        ("nodes", f"/api/v1/flows/{fid}/nodes"),
        ("failures", f"/api/v1/flows/{fid}/failures"),
        ("reliability", f"/api/v1/flows/{fid}/reliability"),
        ("versions", f"/api/v1/flows/{fid}/versions"),
        ("anomalies", f"/api/v1/flows/{fid}/anomalies"),
    ):
        out[f"{name} start"] = ("GET", path, {"params": {"start": t}}, ("query", "start"))
        out[f"{name} end"] = ("GET", path, {"params": {"end": t}}, ("query", "end"))
    for name, method, path in (
        ("cost", "GET", "/api/v1/cost"),
        ("recompute", "POST", "/api/v1/prices/recompute"),
    ):
        out[f"{name} start"] = (method, path, {"params": {"start": t, "end": later}}, ("query", "start"))
        out[f"{name} end"] = (method, path, {"params": {"start": "2020-01-01", "end": t}}, ("query", "end"))
    trend = f"/api/v1/flows/{fid}/trend"
    out["trend start"] = ("GET", trend, {"params": {"start": t, "end": later}}, ("query", "start"))
    out["trend end"] = ("GET", trend, {"params": {"start": "2026-01-01", "end": t}}, ("query", "end"))
    metrics = {"measures": ["runs"], "start": "2026-01-01", "end": later}
    out["metrics start"] = ("POST", "/api/v1/metrics", {"json": {**metrics, "start": t}}, ("body", "start"))
    out["metrics filter"] = ("POST", "/api/v1/metrics", {"json": {**metrics, **after}}, ("body", "filter"))
    for name, path in (("search", "/api/v1/executions/search"), ("count", "/api/v1/executions/count")):
        out[f"{name} after_"] = ("POST", path, {"json": after}, ("body", "filter", "created_at", "after_"))
        out[f"{name} before_"] = ("POST", path, {"json": before}, ("body", "filter", "created_at", "before_"))
    for name, path in (
        ("download", "/api/v1/executions/download"),
        ("flow download", f"/api/v1/flows/{fid}/executions/download"),
    ):
        for side, f in (("after_", after), ("before_", before)):
            params = {"filter": json.dumps(f["filter"])}
            out[f"{name} {side}"] = ("GET", path, {"params": params}, ("query", "filter", "created_at", side))
    silence = {"flow_id": fid, "comment": "x"}
    out["silence starts_at"] = (
        "POST",
        "/api/v1/alerts/silences",
        {"json": {**silence, "starts_at": t, "duration": "1h"}},
        ("body", "starts_at"),
    )
    out["silence ends_at"] = (
        "POST",
        "/api/v1/alerts/silences",
        {"json": {**silence, "ends_at": t}},
        ("body", "ends_at"),
    )
    out["dry-run now"] = ("POST", "/api/v1/retention/dry-run", {"json": {"now": t}}, ("body", "now"))
    out["flow dry-run now"] = (
        "POST",
        f"/api/v1/flows/{fid}/retention/dry-run",
        {"json": {"now": t}},
        ("body", "now"),
    )
    out["restore start"] = (
        "POST",
        "/api/v1/retention/restore",
        {"json": {"start": t, "end": later}},
        ("body", "start"),
    )
    out["restore end"] = (
        "POST",
        "/api/v1/retention/restore",
        {"json": {"start": "2020-01-01", "end": t}},
        ("body", "end"),
    )
    return out


@pytest.fixture(scope="module")
def runs_flow(bw: World) -> str:
    """A flow holding three runs, shared by the tests that only read."""
    fid = bw.new_flow(name="times")
    for status in ("success", "error", "aborted"):
        bw.post_run("owner", fid, status=status)
    return fid


@pytest.mark.parametrize("route", list(_time_requests("f", "t")))
def test_a_time_off_the_calendar_in_utc_is_a_422_naming_it(bw: World, runs_flow: str, route: str) -> None:
    """A time whose offset takes it out of years 1-9999 does not fit: FastAPI's list, located at
    the parameter (it was a 500: OverflowError converting it to UTC)."""
    for t in OFF_THE_CALENDAR:
        method, path, kwargs, loc = _time_requests(runs_flow, t)[route]
        r = bw.client.request(method, path, headers=bearer("admin"), **kwargs)
        detail = assert_refused(r)
        assert isinstance(detail, list), (t, detail)
        assert any(tuple(e["loc"][: len(loc)]) == loc for e in detail), (t, detail)
        assert any("UTC" in e["msg"] for e in detail), (t, detail)


# times at datetime's ends, in range as written and in UTC: an answer or a 422, never a 500
EDGES = ["0001-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59.999999", "9999-12-31T23:59:59Z"]
EDGES += ["0001-01-08T12:00:00", "0001-01-14T23:59:59+00:00"]  # the failures' trend reaches 14 days back


@pytest.mark.parametrize("route", list(_time_requests("f", "t")))
def test_a_time_at_the_calendars_ends_is_never_a_500(bw: World, runs_flow: str, route: str) -> None:
    """Windows, previous periods and the like computed from it stay in range (the failures'
    trend went 14 days back from `end`: a 500 for an end in year 1's first fortnight)."""
    for t in EDGES:
        method, path, kwargs, _ = _time_requests(runs_flow, t)[route]
        r = bw.client.request(method, path, headers=bearer("admin"), **kwargs)
        assert r.status_code < 500, (t, r.status_code, r.text)
        if r.status_code >= 400:
            assert_refused(r, r.status_code)


@pytest.mark.parametrize(
    "created_at",
    [
        *OFF_THE_CALENDAR,
        "0001-01-01 00:00:00+01:00",
        "0001-01-01T00:00+01:00",
        -62_135_596_801,
        253_402_300_800,
    ],
)
@pytest.mark.parametrize("ndjson", [False, True], ids=["array", "ndjson"])
def test_batch_created_at_off_the_calendar_refuses_that_item_alone(
    bw: World, runs_flow: str, created_at: Any, ndjson: bool
) -> None:
    """README: a bad item never loses the good ones (all four were refused as an internal error)."""
    items = [make_execution(runs_flow, text=f"good {i}") for i in range(4)]
    items[1]["created_at"] = created_at
    content = b"\n".join(orjson.dumps(i) for i in items) if ndjson else items
    out = batch(bw, "owner", content, ndjson=ndjson)
    assert [i["status"] for i in out["items"]] == ["stored", "refused", "stored", "stored"], out
    assert "created_at" in out["items"][1]["detail"], out
    assert "internal error" not in out["items"][1]["detail"], out
    for item in (out["items"][0], *out["items"][2:]):
        assert detail(bw, runs_flow, item["id"]).status_code == 200


@pytest.mark.parametrize("created_at", [*OFF_THE_CALENDAR, 1_796_573_794_000, "20261201"])
def test_single_post_ignores_created_at(bw: World, runs_flow: str, created_at: Any) -> None:
    """The contract's POST stamps its own time: a created_at in the body is an unknown key."""
    body = make_execution(runs_flow, created_at=created_at)
    r = bw.client.post(f"/api/v1/flows/{runs_flow}/executions", json=body, headers=bearer("owner"))
    assert r.status_code == 200, r.text
    assert abs(r.json()["created_at"] - datetime.now(UTC).timestamp()) < 600


@pytest.mark.parametrize(
    ("created_at", "reason"),
    [
        (1_796_573_794_000, "epoch seconds"),  # milliseconds: was stored as 2026-12-06
        (253_402_300_799, "in the future"),  # 9999-12-31 in seconds: was stored as 1978
        ("20261201", "string of digits"),  # was stored as epoch 20261201 (1970-08-23)
        ("1796573794", "string of digits"),
    ],
)
def test_batch_created_at_is_never_read_as_another_time(
    bw: World, flow: str, created_at: Any, reason: str
) -> None:
    """A number is epoch seconds (never milliseconds); a string is ISO 8601, not digits."""
    before = everything(bw, flow)
    out = batch(bw, "owner", [make_execution(flow, created_at=created_at)])
    assert out["items"][0]["status"] == "refused", out
    assert "created_at" in out["items"][0]["detail"] and reason in out["items"][0]["detail"], out
    assert everything(bw, flow) == before


@pytest.mark.parametrize("route", ["stats start", "nodes end", "failures end", "cost start", "trend start"])
def test_a_time_in_the_query_is_epoch_seconds_never_milliseconds(
    bw: World, runs_flow: str, route: str
) -> None:
    """Digits in a query string are epoch seconds (milliseconds were taken for 2e10 and above)."""
    now = int(datetime.now(UTC).timestamp())
    method, path, kwargs, loc = _time_requests(runs_flow, str(now * 1000))[route]
    detail = assert_refused(bw.client.request(method, path, headers=bearer("admin"), **kwargs))
    assert isinstance(detail, list) and [tuple(e["loc"]) for e in detail] == [loc], detail
    assert "epoch seconds" in detail[0]["msg"], detail
    for seconds in (str(now - 86_400), f"{now - 86_400}.5"):
        method, path, kwargs, loc = _time_requests(runs_flow, seconds)[route]
        r = bw.client.request(method, path, headers=bearer("admin"), **kwargs)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("route", ["search after_", "count before_", "download after_", "metrics start"])
def test_a_time_in_json_is_a_number_of_epoch_seconds_or_iso_8601(
    bw: World, runs_flow: str, route: str
) -> None:
    """In JSON, epoch seconds are a number: a string of digits is refused (it was read as epoch
    seconds, or milliseconds from 2e10; "20261201" may be meant as an ISO 8601 basic date)."""
    now = int(datetime.now(UTC).timestamp())
    for digits in ("20261201", str(now)):
        method, path, kwargs, loc = _time_requests(runs_flow, digits)[route]
        detail = assert_refused(bw.client.request(method, path, headers=bearer("admin"), **kwargs))
        assert isinstance(detail, list) and any(tuple(e["loc"][: len(loc)]) == loc for e in detail), detail
        assert "string of digits" in str(detail), detail
    method, path, kwargs, _ = _time_requests(runs_flow, "NOW")[route]
    numeric = json.loads(
        json.dumps(kwargs).replace('"NOW"', str(now - 86_400)).replace('\\"NOW\\"', str(now - 86_400))
    )
    r = bw.client.request(method, path, headers=bearer("admin"), **numeric)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", '{"execution_time": {"ge_": NaN}}', "1e309"])
@pytest.mark.parametrize("scope", ["all", "flow"])
def test_a_download_filter_that_is_not_json_is_a_422(bw: World, flow: str, raw: str, scope: str) -> None:
    """pydantic's JSON reader takes NaN and Infinity; its 422 then held a float no JSON answer can
    carry, and the download answered 500 to anyone."""
    path = "/api/v1/executions/download" if scope == "all" else f"/api/v1/flows/{flow}/executions/download"
    r = bw.client.get(path, params={"filter": raw}, headers=bearer("reader"))
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail[0]["loc"][:2] == ["query", "filter"]


def test_a_node_status_that_is_not_a_string_is_stored_as_success(bw: World, flow: str) -> None:
    """`{"status": {}}` in a node made the node facts raise (an unhashable status): the single
    POST answered 500, and in a batch every item of its chunk was refused with it."""
    odd = {"n_1": {"status": {}}, "n_2": {"status": [1]}}
    single = bw.client.post(
        f"/api/v1/flows/{flow}/executions",
        json=make_execution(flow, node_results=odd, outputs=None),
        headers=bearer("owner"),
    )
    assert single.status_code == 200, single.text
    # NDJSON: one line the bulk path reads, one it leaves to the per-item path (an exponent in a
    # payload), one good
    lines = [
        orjson.dumps(make_execution(flow, node_results=odd, outputs=None)),
        orjson.dumps({**make_execution(flow, node_results=odd, outputs=None), "meta": {"x": 1}}).replace(
            b'"x":1}', b'"x":1e0}'
        ),
        orjson.dumps(make_execution(flow)),
    ]
    r = bw.client.post(
        "/api/v1/executions/batch",
        content=b"\n".join(lines),
        headers={**bearer("owner"), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["stored"] == 3, r.text
    nodes = bw.client.get(f"/api/v1/flows/{flow}/nodes", headers=bearer("owner")).json()
    odd_nodes = {n["node_id"]: (n["runs"], n["errors"]) for n in nodes if n["node_id"] in odd}
    assert odd_nodes == {"n_1": (3, 0), "n_2": (3, 0)}  # three runs each, none failed


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/proc/self/environ", "/dev/zero", "{tmp}/missing.db", "{tmp}", "relative.db",
     "{tmp}/webui.db?mode=rwc", "/tmp/\x00x"],
)  # fmt: skip
def test_the_import_step_answers_alike_for_any_path_that_is_not_a_sqlite_file(
    bw: World, tmp_path: Path, path: str
) -> None:
    """An admin's request told a missing file ("no SQLite database at"), an unreadable or other
    file ("file is not a database") and a SQLite file apart: it could probe which files exist."""
    source = "sqlite:///" + path.format(tmp=tmp_path)
    r = bw.client.post("/api/v1/executions/import/openwebui", json={"from": source}, headers=bearer("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"{source} is not an Open WebUI database: no readable SQLite file there"
    assert not (tmp_path / "webui.db").exists()


def test_the_import_step_refuses_a_url_that_is_not_one(bw: World) -> None:
    """An unclosed IPv6 host failed in the URL's split: a 500 (the CLI: a traceback)."""
    r = bw.client.post(
        "/api/v1/executions/import/openwebui",
        json={"from": "postgresql://owui:pw@[::1/webui"},
        headers=bearer("admin"),
    )
    assert assert_refused(r).startswith("from: not a database URL"), r.text
    assert "pw" not in r.text


@pytest.mark.parametrize("extra", [{"max_chunk": 2}, {"zzz": 1}])
def test_the_import_step_refuses_a_field_it_does_not_read(
    bw: World, tmp_path: Path, extra: dict[str, int]
) -> None:
    """A typo (`max_chunk`) ran a real import step with the defaults."""
    from tests.openwebui.webui_db import WebUIDb

    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.add_user("alice")
    db.add_execution(db.add_flow("alice"), "alice")
    db.close()
    before = bw.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall())
    body = {"from": db.url, **extra}
    r = bw.client.post("/api/v1/executions/import/openwebui", json=body, headers=bearer("admin"))
    assert r.status_code == 422 and names(r.json()["detail"], next(iter(extra))), r.text
    assert bw.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()) == before


def test_the_import_step_given_the_store_itself_keeps_the_stores_lock(bw: World) -> None:
    """Reading the header of the store's own file opened and closed it in the server's process,
    which drops every POSIX lock the process holds on it: another process could then open the
    store beside the server (a backup did, and wrote to it)."""
    store = bw.ctx.settings.db_path
    for path in (store, Path(f"{store}.wal")):
        if not path.exists():
            continue
        source = f"sqlite:///{path}"
        r = bw.client.post(
            "/api/v1/executions/import/openwebui", json={"from": source}, headers=bearer("admin")
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == f"{source} is not an Open WebUI database: no readable SQLite file there"
    other = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(store)!r}, read_only=True)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode != 0 and "lock" in other.stderr.lower(), other.stderr


def _boolean_for_a_number(fid: str) -> dict[str, tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, field) with `true` where a number goes: pydantic's lax mode read
    it as 1 (a rule stored with a one-second window)."""
    rule = {"name": "r", "metric": "failure_rate", "flow_id": fid, "window": 60, "threshold": 0.5}
    price = {
        "model_pattern": "x*",
        "input_per_million": 1,
        "output_per_million": 1,
        "valid_from": "2026-01-01",
    }
    return {
        **{
            f"rule {f}": ("POST", "/api/v1/alerts/rules", {**rule, f: True}, f)
            for f in ("window", "threshold", "min_runs", "pending_for", "warning_threshold")
        },
        "price": (
            "PUT",
            "/api/v1/prices",
            {"prices": [{**price, "input_per_million": True}]},
            "input_per_million",
        ),
        "policy": ("PUT", f"/api/v1/flows/{fid}/retention/policy", {"keep_last": True}, "keep_last"),
        "search limit": ("POST", "/api/v1/executions/search", {"limit": True}, "limit"),
        "search rating": ("POST", "/api/v1/executions/search", {"filter": {"rating": True}}, "rating"),
        "search duration": (
            "POST",
            "/api/v1/executions/search",
            {"filter": {"execution_time": {"ge_": True}}},
            "ge_",
        ),
        "search has_note": ("POST", "/api/v1/executions/search", {"filter": {"has_note": "yes"}}, "has_note"),
        # and the other way round: a number where a boolean or a date goes (0 read as false, 1970-01-01)
        "policy archive": ("PUT", f"/api/v1/flows/{fid}/retention/policy", {"archive": 0}, "archive"),
        "price valid_from": ("PUT", "/api/v1/prices", {"prices": [{**price, "valid_from": 0}]}, "valid_from"),
        "dry-run ids_limit": ("POST", "/api/v1/retention/dry-run", {"ids_limit": False}, "ids_limit"),
        "metrics max_groups": (
            "POST",
            "/api/v1/metrics",
            {"measures": ["runs"], "start": "2026-01-01", "end": "2026-01-02", "max_groups": True},
            "max_groups",
        ),
    }


@pytest.mark.parametrize("case", list(_boolean_for_a_number("f")))
def test_a_boolean_where_a_number_goes_is_a_422_naming_it(bw: World, flow: str, case: str) -> None:
    method, path, body, field = _boolean_for_a_number(flow)[case]
    r = bw.client.request(method, path, json=body, headers=bearer("admin"))
    assert names(assert_refused(r), field), r.text


def test_an_ndjson_line_holding_a_lone_carriage_return_is_one_item(bw: World) -> None:
    """NDJSON ends lines at `\\n` (or `\\r\\n`); a `\\r` between two tokens is JSON whitespace.
    `splitlines()` cut such a line in two ("line 1 is not JSON", "line 2 is not JSON") and moved
    every later item's index on by one, so a client resending its refused lines by index resent
    one already stored."""
    flow = bw.shared
    good = orjson.dumps(make_execution(flow, execution_time=111))
    split = good.replace(b'"status":', b'\r"status":', 1)
    bad = orjson.dumps({**make_execution(flow, execution_time=222), "status": "bogus"})
    last = orjson.dumps(make_execution(flow, execution_time=333))
    r = bw.client.post(
        "/api/v1/executions/batch",
        content=split + b"\n" + bad + b"\r\n" + last + b"\n",
        headers={**bearer("owner"), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["status"] for i in body["items"]] == ["stored", "refused", "stored"], body
    assert [i["index"] for i in body["items"]] == [0, 1, 2]
    assert "status" in body["items"][1]["detail"]


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-inf", "1e309"]
)  # as strings: a bare 1e309 is not JSON here
@pytest.mark.parametrize("field", ["threshold", "warning_threshold"])
def test_an_alert_threshold_that_is_not_a_finite_number_is_a_422(
    bw: World, flow: str, field: str, value: str
) -> None:
    """`"threshold": "NaN"` was stored as null: a rule that never fired, and `alerts list` a
    traceback. A PATCH took the same values."""
    rule = {
        "name": "n",
        "flow_id": flow,
        "metric": "error_count",
        "window": "1h",
        "operator": "gt",
        "threshold": 5,
    }
    body = json.dumps({**rule, field: "VALUE"}).replace(
        '"VALUE"', "1e309" if value == 1e309 else json.dumps(value)
    )
    admin = {**bearer("admin"), "content-type": "application/json"}
    r = bw.client.post("/api/v1/alerts/rules", content=body, headers=admin)
    assert names(assert_refused(r), field), r.text
    made = bw.client.post("/api/v1/alerts/rules", json=rule, headers=bearer("admin")).json()
    patch = json.dumps({field: value})
    r = bw.client.patch(f"/api/v1/alerts/rules/{made['id']}", content=patch, headers=admin)
    assert names(assert_refused(r), field), r.text
    got = bw.client.get(f"/api/v1/alerts/rules/{made['id']}", headers=bearer("admin")).json()
    assert got["threshold"] == 5 and got["warning_threshold"] is None  # unchanged


@pytest.mark.parametrize("tag", ["bug\n", "a\nb"])
def test_a_tag_ending_in_a_newline_is_refused(bw: World, flow: str, tag: str) -> None:
    """`^...$` let a final newline through: `bug\\n` was stored, and a search for `bug` missed it."""
    run_id = bw.post_run("owner", flow)["id"]
    path = f"/api/v1/flows/{flow}/executions/{run_id}/annotation"
    r = bw.client.put(path, json={"tags": [tag]}, headers=bearer("owner"))
    assert names(assert_refused(r), "tags"), r.text


def test_a_meta_key_ending_in_a_newline_is_refused(bw: World) -> None:
    r = bw.client.post(
        "/api/v1/executions/search", json={"filter": {"meta": {"k\n": "v"}}}, headers=bearer("owner")
    )
    assert names(assert_refused(r), "meta"), r.text


def test_an_item_nested_past_the_parser_s_limit_is_refused_alone(bw: World, flow: str) -> None:
    """orjson reads at most 1,024 levels: one such item in a JSON array refused the whole batch
    (a 422 at a byte offset), where NDJSON refused only its line."""
    good = {"flow_id": flow, "status": "success", "execution_time": 1}
    deep = b'{"a":' * 1100 + b"1" + b"}" * 1100
    body = b"[" + json.dumps(good).encode() + b', {"flow_id": "' + flow.encode() + b'", "inputs": '
    body += deep + b"}, " + json.dumps(good).encode() + b"]"
    r = bw.client.post(
        "/api/v1/executions/batch",
        content=body,
        headers={**bearer("owner"), "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["stored"], result["refused"]) == (2, 1)
    refused = next(i for i in result["items"] if i["status"] == "refused")
    assert refused["index"] == 1 and "depth limit" in refused["detail"]
    truncated = body[:-1]  # not an array at all: still refused whole
    r = bw.client.post(
        "/api/v1/executions/batch",
        content=truncated,
        headers={**bearer("owner"), "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text


def test_an_ndjson_line_that_is_not_utf8_says_so(bw: World, flow: str) -> None:
    """orjson's words were "surrogates not allowed", for a line holding a \\xff byte."""
    good = json.dumps({"flow_id": flow, "status": "success", "execution_time": 1}).encode()
    body = good + b'\n{"flow_id": "' + flow.encode() + b'", "meta": {"k": "\xff"}}\n' + good
    r = bw.client.post(
        "/api/v1/executions/batch",
        content=body,
        headers={**bearer("owner"), "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text
    refused = next(i for i in r.json()["items"] if i["status"] == "refused")
    assert refused["detail"] == "line 2 is not JSON: it is not UTF-8"


def test_more_month_buckets_than_allowed_asks_for_a_shorter_range(bw: World) -> None:
    body = {"measures": ["runs"], "start": "1970-01-01T00:00:00Z", "end": "2200-01-01T00:00:00Z"}
    r = bw.client.post("/api/v1/metrics", json=body, headers=bearer("owner"))
    detail = assert_refused(r)
    assert "month buckets" in str(detail) and "use a shorter range" in str(detail)
    assert "wider bucket" not in str(detail)  # there is none wider than a month


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "1e309"])
def test_a_price_that_is_not_a_finite_number_is_refused_in_those_words(bw: World, value: str) -> None:
    """The bound was checked first: `"NaN"` was refused as "less than or equal to 1000000"."""
    price = {
        "model_pattern": "m-*",
        "input_per_million": value,
        "output_per_million": 1,
        "valid_from": "2026-01-01",
    }
    r = bw.client.put("/api/v1/prices", json={"prices": [price]}, headers=bearer("admin"))
    detail = assert_refused(r)
    assert names(detail, "input_per_million") and "finite" in r.text, r.text
    assert not any(
        p["model_pattern"] == "m-*" for p in bw.client.get("/api/v1/prices", headers=bearer("admin")).json()
    )
