"""The editor spreads a text result into its node one UTF-16 unit a key, so an emoji arrives as
two keys holding one half each (`"\\ud83d"`, `"\\ude00"`): JSON may spell that, no UTF-8 string
can hold it. Such runs and flows are stored with each lone half read as U+FFFD, never refused
(the peer keeps them); everything else in them is kept exactly. Both modes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import World, bearer, open_world

JSON = {"Content-Type": "application/json"}
# "Hi 😀" as the editor spreads it (`{...text}` in JavaScript), and as JSON.stringify writes it
SPREAD = rb'{"0":"H","1":"i","2":" ","3":"\ud83d","4":"\ude00","label":"Model","modelId":"gpt-4o"}'
STORED = {"0": "H", "1": "i", "2": " ", "3": "\ufffd", "4": "\ufffd", "label": "Model", "modelId": "gpt-4o"}


def _body(flow_id: str) -> bytes:
    results = b'{"model_1739905519876_k3j9x2abq":' + SPREAD + b"}"
    return (
        b'{"flow_id":"%s","status":"success","execution_time":812,"inputs":{"prompt":"Say hi \\ud83d\\ude00"},'
        b'"outputs":%s,"node_results":%s,"errors":null}' % (flow_id.encode(), results, results)
    )


@pytest.fixture(scope="module", params=["standalone", "sqlite"])
def sw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from open_world(tmp_path_factory.mktemp(f"halves-{request.param}"), request.param)


def _check_stored(w: World, flow_id: str, run_id: str) -> None:
    r = w.client.get(f"/api/v1/flows/{flow_id}/executions/{run_id}", headers=bearer("owner"))
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["node_results"] == {"model_1739905519876_k3j9x2abq": STORED}
    assert run["outputs"] == run["node_results"]
    assert run["inputs"] == {"prompt": "Say hi \U0001f600"}  # an escaped pair is the emoji, kept


def test_a_posted_run_with_halves_is_stored(sw: World) -> None:
    fid = sw.new_flow(name="halves")
    r = sw.client.post(
        f"/api/v1/flows/{fid}/executions", content=_body(fid), headers={**bearer("owner"), **JSON}
    )
    assert r.status_code == 200, r.text
    _check_stored(sw, fid, r.json()["id"])
    listed = sw.client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("owner")).json()
    assert [x["id"] for x in listed] == [r.json()["id"]]
    stats = sw.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=bearer("owner")).json()
    assert stats["total_executions"] == 1


def test_keys_that_differ_only_in_halves_are_refused_not_merged(sw: World) -> None:
    """Two keys holding different lone halves both read as U+FFFD: one value was dropped with a
    200. A key holding one half, or the same key twice (the last wins), is still stored."""
    fid = sw.new_flow(name="half keys")
    results = rb'{"\ud83d":"first","\ud83e":"second","ok":1}'
    body = b'{"flow_id":"%s","status":"success","execution_time":1,"node_results":%s}' % (
        fid.encode(),
        results,
    )
    r = sw.client.post(f"/api/v1/flows/{fid}/executions", content=body, headers={**bearer("owner"), **JSON})
    assert r.status_code == 422, r.text
    assert "U+FFFD" in r.json()["detail"][0]["ctx"]["error"]
    assert sw.client.get(f"/api/v1/flows/{fid}/executions", headers=bearer("owner")).json() == []
    nodes = rb'{"name":"n","nodes":[{"\ud800":1,"\udc00":2}],"edges":[]}'
    r = sw.client.post("/api/v1/flows/create", content=nodes, headers={**bearer("owner"), **JSON})
    assert r.status_code == 422, r.text
    one = body.replace(rb'"\ud83e":"second",', b"").replace(b'"ok":1', rb'"ok":1,"\ud83d":"again"')
    r = sw.client.post(f"/api/v1/flows/{fid}/executions", content=one, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200, r.text
    assert r.json()["node_results"] == {"\ufffd": "again", "ok": 1}


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_batch_items_with_halves_are_stored_beside_the_others(sw: World, ndjson: bool) -> None:
    fid = sw.new_flow(name="halves-batch")
    plain = b'{"flow_id":"%s","status":"error","execution_time":5}' % fid.encode()
    items = [
        plain,
        _body(fid),
        plain,
        b'{"flow_id":"%s","status":"\\ud83d","execution_time":5}' % fid.encode(),
    ]
    content = b"\n".join(items) if ndjson else b"[" + b",".join(items) + b"]"
    ctype = "application/x-ndjson" if ndjson else "application/json"
    r = sw.client.post(
        "/api/v1/executions/batch", content=content, headers={**bearer("owner"), "Content-Type": ctype}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert [i["status"] for i in out["items"]] == ["stored", "stored", "stored", "refused"]
    assert "status" in out["items"][3]["detail"]  # a half in a field with rules: refused by the rule
    _check_stored(sw, fid, out["items"][1]["id"])


def test_a_flow_with_halves_in_its_nodes_is_saved(world: World) -> None:
    """Standalone: flows are saved here (in Open WebUI mode there, and mirrored: below)."""
    sw = world
    node = b'{"id":"model_1","type":"model","data":{"result":' + SPREAD + b"}}"
    body = b'{"name":"emoji \\ud83d","nodes":[' + node + b'],"edges":[]}'
    r = sw.client.post("/api/v1/flows/create", content=body, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200, r.text
    flow = sw.client.get(f"/api/v1/flows/{r.json()['id']}", headers=bearer("owner")).json()
    assert flow["name"] == "emoji \ufffd"
    assert flow["nodes"][0]["data"]["result"] == STORED
    update = body.replace(b"emoji", b"renamed")
    r = sw.client.post(f"/api/v1/flows/{flow['id']}", content=update, headers={**bearer("owner"), **JSON})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed \ufffd"


@pytest.fixture(scope="module")
def owui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from open_world(tmp_path_factory.mktemp("halves-owui"), "sqlite")


def test_an_open_webui_flow_with_halves_is_mirrored_whole(owui: World) -> None:
    """Open WebUI (Python's json) writes the halves as escapes in `flow.nodes`: the mirror reads
    the nodes, it does not take them as not JSON (read as [])."""
    sw = owui
    nodes: list[dict[str, Any]] = [{"id": "model_1", "type": "model", "data": {"text": "\ud83d"}}]
    fid = sw.new_flow(name="owui-halves", nodes=nodes)
    flow = sw.client.get(f"/api/v1/flows/{fid}", headers=bearer("owner")).json()
    assert flow["nodes"] == [{"id": "model_1", "type": "model", "data": {"text": "\ufffd"}}]
