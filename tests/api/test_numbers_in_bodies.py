"""A number in an operator's body is a JSON number: a string that reads as one (`"1_000"`,
`" +5 "`, `"0.5"`) and a boolean are a 422 naming the field, and nothing stored changes.

pydantic's lax mode read such strings as numbers: a retention policy of `"keep_last": "1_000"`
was stored, a price of `" +5 "` USD, an alert rule whose threshold was `"0.5"`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from analytics.core.numbers import Count, Number
from tests.factories import World, bearer, open_world

STRINGS = ["1_000", " +5 ", "0.5", "5", "NaN"]
ADMIN = bearer("admin")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for the module: each test compares what is stored before and after itself."""
    yield from open_world(tmp_path_factory.mktemp("numbers"))


def _rule(flow_id: str) -> dict[str, Any]:
    return {"name": "n", "metric": "error_count", "flow_id": flow_id, "window": "1h", "threshold": 5}


def _price(**change: Any) -> dict[str, Any]:
    return {
        "prices": [
            {
                "model_pattern": "numbers-*",
                "input_per_million": 1,
                "output_per_million": 2,
                "valid_from": "2026-01-01",
                **change,
            }
        ]
    }


def _names(r: Any, field: str) -> bool:
    """The 422's `detail` names the field: FastAPI's `loc`, or a checked message's prefix."""
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    if isinstance(detail, list):
        return any(str(issue["loc"][-1]) == field for issue in detail)
    return str(detail).startswith(f"{field}:")


# (method, path, body with VALUE in the numeric field, the field); a {flow} is the world's flow
CASES = [
    ("post", "/api/v1/alerts/rules", lambda f, v: {**_rule(f), "threshold": v}, "threshold"),
    ("post", "/api/v1/alerts/rules", lambda f, v: {**_rule(f), "warning_threshold": v}, "warning_threshold"),
    (
        "post",
        "/api/v1/alerts/rules",
        lambda f, v: {**_rule(f), "recovery_threshold": v},
        "recovery_threshold",
    ),
    ("post", "/api/v1/alerts/rules", lambda f, v: {**_rule(f), "min_runs": v}, "min_runs"),
    ("put", "/api/v1/retention/policy", lambda f, v: {"max_age_days": v}, "max_age_days"),
    ("put", "/api/v1/retention/policy", lambda f, v: {"failed_max_age_days": v}, "failed_max_age_days"),
    ("put", "/api/v1/retention/policy", lambda f, v: {"keep_last": v}, "keep_last"),
    ("put", "/api/v1/retention/policy", lambda f, v: {"payload_ttl_days": v}, "payload_ttl_days"),
    ("put", "/api/v1/flows/{flow}/retention/policy", lambda f, v: {"keep_last": v}, "keep_last"),
    ("post", "/api/v1/retention/dry-run", lambda f, v: {"ids_limit": v}, "ids_limit"),
    ("post", "/api/v1/retention/dry-run", lambda f, v: {"policy": {"keep_last": v}}, "keep_last"),
    ("put", "/api/v1/prices", lambda f, v: _price(input_per_million=v), "input_per_million"),
    ("put", "/api/v1/prices", lambda f, v: _price(output_per_million=v), "output_per_million"),
    ("post", "/api/v1/sql", lambda f, v: {"sql": "SELECT 1", "limit": v}, "limit"),
    ("post", "/api/v1/sql", lambda f, v: {"sql": "SELECT 1", "timeout_s": v}, "timeout_s"),
    ("post", "/api/v1/executions/search", lambda f, v: {"limit": v}, "limit"),
]


def _stored(w: World) -> tuple[Any, ...]:
    get = w.client.get
    return (
        get("/api/v1/alerts/rules", headers=ADMIN).json(),
        get("/api/v1/retention/policy", headers=ADMIN).json(),
        get(f"/api/v1/flows/{w.shared}/retention/policy", headers=ADMIN).json(),
        get("/api/v1/prices", headers=ADMIN).json(),
    )


@pytest.mark.parametrize("value", [*STRINGS, True, False])
@pytest.mark.parametrize(("method", "path", "body", "field"), CASES, ids=[f"{c[1]}:{c[3]}" for c in CASES])
def test_a_number_sent_as_a_string_or_a_boolean_is_a_422_naming_the_field(
    world: World, method: str, path: str, body: Any, field: str, value: Any
) -> None:
    before = _stored(world)
    r = world.client.request(
        method, path.format(flow=world.shared), json=body(world.shared, value), headers=ADMIN
    )
    assert _names(r, field), r.text
    if isinstance(value, str):
        assert "string" in r.text, r.text
    assert _stored(world) == before


def test_json_numbers_are_still_taken(world: World) -> None:
    """Integers where a float is asked, and floats: what the strings above stood for."""
    rule = world.client.post(
        "/api/v1/alerts/rules", json={**_rule(world.shared), "threshold": 5, "min_runs": 3}, headers=ADMIN
    )
    assert rule.status_code == 201 and (rule.json()["threshold"], rule.json()["min_runs"]) == (5, 3)
    policy = {"max_age_days": 0.5, "keep_last": 1000, "payload_ttl_days": 2}
    r = world.client.put("/api/v1/retention/policy", json=policy, headers=ADMIN)
    assert r.status_code == 200 and r.json()["keep_last"] == 1000 and r.json()["max_age_days"] == 0.5
    r = world.client.post("/api/v1/retention/dry-run", json={"ids_limit": 10}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["ids_limit"] == 10, r.text
    r = world.client.put("/api/v1/prices", json=_price(input_per_million=0.5), headers=ADMIN)
    assert r.status_code == 200 and r.json()[0]["input_per_million"] == 0.5, r.text


def test_an_alert_rule_patch_refuses_a_string_threshold_too(world: World) -> None:
    made = world.client.post("/api/v1/alerts/rules", json=_rule(world.shared), headers=ADMIN).json()
    for field, value in (("threshold", "7"), ("min_runs", "1_000")):
        r = world.client.patch(f"/api/v1/alerts/rules/{made['id']}", json={field: value}, headers=ADMIN)
        assert _names(r, field), r.text
    got = world.client.get(f"/api/v1/alerts/rules/{made['id']}", headers=ADMIN).json()
    assert (got["threshold"], got["min_runs"], got["updated_at"]) == (5, 1, made["updated_at"])


class _Form(BaseModel):
    count: Count
    number: Number


@pytest.mark.parametrize("value", [*STRINGS, True])
def test_the_shared_types_refuse_strings_and_booleans(value: Any) -> None:
    for field in ("count", "number"):
        body = {"count": 1, "number": 1.0, field: value}
        for validate in (_Form.model_validate, lambda b: _Form.model_validate_json(json.dumps(b))):
            with pytest.raises(ValidationError) as refused:
                validate(body)
            assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_the_shared_types_take_json_numbers() -> None:
    assert _Form.model_validate_json('{"count": 3, "number": 2}') == _Form(count=3, number=2.0)
    assert _Form.model_validate_json('{"count": 3.0, "number": 0.5}') == _Form(count=3, number=0.5)
