"""An alert rule's body fields refused as the bad field they are: a `flow_id` naming no flow (or one
the caller cannot read) is a 422 naming it, as a silence's is, not the 404 of a flow in a URL;
a name or a silence's comment of spaces only is no text. Nothing stored changes."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.access.permissions import OWNER_ONLY
from tests.analytics.alerts import conftest as _alerts_fixtures
from tests.factories import World, bearer

settings = _alerts_fixtures.settings

RULES = "/api/v1/alerts/rules"
SILENCES = "/api/v1/alerts/silences"


def _body(flow_id: str, **change: Any) -> dict[str, Any]:
    return {
        "name": "errors",
        "metric": "failure_rate",
        "flow_id": flow_id,
        "window": "15m",
        "threshold": 0.5,
        **change,
    }


def _rules(w: World) -> list[dict[str, Any]]:
    return list(w.client.get(RULES, headers=bearer("admin")).json())


def _no_flow(r: Any, flow_id: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": f"flow_id: there is no flow {flow_id!r}"}


def test_an_unknown_flow_is_a_422_naming_flow_id_as_for_a_silence(world: World) -> None:
    r = world.client.post(RULES, json=_body("nope"), headers=bearer("owner"))
    _no_flow(r, "nope")
    silence = {"flow_id": "nope", "duration": "1h", "comment": "deploy"}
    assert world.client.post(SILENCES, json=silence, headers=bearer("owner")).json() == r.json()
    assert _rules(world) == []


def test_a_flow_the_caller_cannot_read_is_unknown_to_them(world: World) -> None:
    """A 403 told a stranger that the private flow exists; its answer is a missing flow's."""
    r = world.client.post(RULES, json=_body(world.private), headers=bearer("stranger"))
    _no_flow(r, world.private)
    assert _rules(world) == []


def test_a_flow_read_but_not_managed_stays_a_403(world: World) -> None:
    for user in ("reader", "writer"):
        r = world.client.post(RULES, json=_body(world.shared), headers=bearer(user))
        assert r.status_code == 403 and r.json()["detail"] == OWNER_ONLY, r.text
    assert _rules(world) == []


def test_a_patch_moving_a_rule_answers_the_same(world: World) -> None:
    made = world.client.post(RULES, json=_body(world.shared), headers=bearer("owner"))
    assert made.status_code == 201, made.text
    rule = made.json()
    theirs = world.new_flow("stranger", name="theirs", access_control={})  # owner cannot read it
    readable = world.new_flow("stranger", name="shown", access_control=None)  # public: read only
    path = f"{RULES}/{rule['id']}"
    _no_flow(world.client.patch(path, json={"flow_id": "nope"}, headers=bearer("owner")), "nope")
    _no_flow(world.client.patch(path, json={"flow_id": theirs}, headers=bearer("owner")), theirs)
    r = world.client.patch(path, json={"flow_id": readable}, headers=bearer("owner"))
    assert r.status_code == 403, r.text
    assert world.client.get(path, headers=bearer("owner")).json() == rule


@pytest.mark.parametrize("blank", ["   ", "\t", "\n \n"])
def test_a_rule_name_of_spaces_only_is_refused(world: World, blank: str) -> None:
    r = world.client.post(RULES, json=_body(world.shared, name=blank), headers=bearer("owner"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    assert "must not be empty" in r.text
    rule = world.client.post(RULES, json=_body(world.shared), headers=bearer("owner")).json()
    r = world.client.patch(f"{RULES}/{rule['id']}", json={"name": blank}, headers=bearer("owner"))
    assert r.status_code == 422 and r.json()["detail"].startswith("name: "), r.text
    assert _rules(world) == [rule]


@pytest.mark.parametrize("blank", ["   ", "\t", "\n \n"])
def test_a_silence_comment_of_spaces_only_is_refused(world: World, blank: str) -> None:
    """docs/alerts.md: an empty comment is a 422; spaces were taken as a reason."""
    for target in ({"flow_id": world.shared}, {"rule_id": "whichever"}):
        body = {**target, "duration": "1h", "comment": blank}
        r = world.client.post(SILENCES, json=body, headers=bearer("owner"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "comment"], r.text
    assert world.client.get(SILENCES, headers=bearer("admin")).json() == []
    ok = {"flow_id": world.shared, "duration": "1h", "comment": " deploy "}
    assert world.client.post(SILENCES, json=ok, headers=bearer("owner")).status_code == 201
