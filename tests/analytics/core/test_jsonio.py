"""The one JSON writer: what it refuses, and that readers other than orjson agree with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.core import jsonio
from analytics.core.errors import InvalidInput


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True]}, "é ✓ 𝄞", [], {"k": {"n": -3}}])
def test_the_stdlib_reads_back_what_it_writes(value: Any) -> None:
    assert json.loads(jsonio.dumps(value)) == value
    assert json.loads(jsonio.dumps_text(value)) == value
    assert jsonio.stored_text(value, "inputs") == jsonio.dumps_text(value)


def test_canonical_bytes_ignore_key_order() -> None:
    a = {"b": 1, "a": {"y": 2, "x": [3, {"d": 4, "c": 5}]}}
    b = {"a": {"x": [3, {"c": 5, "d": 4}], "y": 2}, "b": 1}
    assert jsonio.canonical(a) == jsonio.canonical(b)
    assert jsonio.canonical(a) == json.dumps(a, sort_keys=True, separators=(",", ":")).encode()


def test_none_stays_null() -> None:
    assert jsonio.stored_text(None, "outputs") is None


@pytest.mark.parametrize("value", [nested(300), {"x": {1, 2}}, "\ud800", {1: "non-string key"}])
def test_what_is_not_json_is_the_callers_mistake_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        jsonio.stored_text(value, "node_results")
    assert err.value.field == "node_results"
    assert "node_results" in err.value.detail
