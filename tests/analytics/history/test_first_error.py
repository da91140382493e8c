"""A run's first error message: the first string in stored order, depth first, never a key."""

from __future__ import annotations

from analytics.history.first_error import MAX_MESSAGE, FirstError, first_error


def test_the_first_string_in_stored_order_names_its_node() -> None:
    assert first_error({"model_1": "boom", "global": "later"}) == FirstError("model_1", "boom")
    assert first_error({"global": "whole run"}) == FirstError(None, "whole run")
    # numbers, booleans and empty containers are not messages; keys never are
    nested = {"n1": {"code": 429, "ok": False, "items": []}, "n2": [{"message": "deep"}, "second"]}
    assert first_error(nested) == FirstError("n2", "deep")


def test_no_message_is_none() -> None:
    for errors in (None, {}, {"n": 5}, {"n": {"code": 1}}, "not an object", [1, "x"]):
        assert first_error(errors) is None


def test_a_long_message_is_cut_with_an_ellipsis() -> None:
    found = first_error({"n": "x" * (MAX_MESSAGE + 50)})
    assert found is not None and len(found.message) == MAX_MESSAGE and found.message.endswith("…")
    exact = first_error({"n": "y" * MAX_MESSAGE})
    assert exact is not None and exact.message == "y" * MAX_MESSAGE
