from analytics.history.node_facts import node_facts


def test_facts_from_a_realistic_payload() -> None:
    node_results = {
        "input_1739905519876_a1b2c3d4e": {"value": "hi"},
        "model_1739905519876_k3j9x2abq": {
            "0": "H",
            "1": "i",
            "modelId": "gpt-4o",
            "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
            "duration_ms": 812,
        },
        "model_1739905519877_zzzzzzzzz": {"model": "llama3", "tokens": 7, "duration_ms": 5.6},
        "output_1739905519878_q": "plain string result",
    }
    errors = {"model_1739905519877_zzzzzzzzz": "rate limited", "global": "flow failed", "tool_1_x": "boom"}
    facts = {f.node_id: f for f in node_facts(node_results, errors)}
    assert set(facts) == {*node_results, "tool_1_x"}
    m = facts["model_1739905519876_k3j9x2abq"]
    assert (m.node_type, m.model, m.status, m.tokens_in, m.tokens_out, m.duration_ms) == (
        "model",
        "gpt-4o",
        "success",
        12,
        30,
        812,
    )
    failed = facts["model_1739905519877_zzzzzzzzz"]
    assert (failed.status, failed.error, failed.model, failed.tokens_out, failed.duration_ms) == (
        "error",
        "rate limited",
        "llama3",
        7,
        6,
    )
    assert facts["output_1739905519878_q"].node_type == "output"
    assert facts["output_1739905519878_q"].model is None
    assert facts["tool_1_x"].status == "error" and facts["tool_1_x"].error == "boom"
    assert facts["input_1739905519876_a1b2c3d4e"].tokens_in is None


def test_no_payload_no_facts() -> None:
    assert node_facts(None, None) == []
    assert node_facts({}, {"global": "x"}) == []


def test_odd_values_are_ignored_not_fatal() -> None:
    facts = node_facts(
        {"weird": {"usage": {"prompt_tokens": True, "completion_tokens": -3}, "modelId": 5}}, None
    )
    (f,) = facts
    assert (f.node_type, f.model, f.tokens_in, f.tokens_out) == (None, None, None, None)


def test_a_node_named_in_errors_is_an_error_whatever_its_message() -> None:
    """`{"model_1": null}`: a node in node_results was a success and one only in errors an error;
    the README's rule (`error` when `errors` names the node) holds for both, with no message."""
    facts = {
        f.node_id: (f.status, f.error)
        for f in node_facts({"model_1": {"status": "success"}}, {"model_1": None, "model_2": None})
    }
    assert facts == {"model_1": ("error", None), "model_2": ("error", None)}


def test_model_is_model_id_when_a_string_else_model() -> None:
    """A number (or list, or empty text) in modelId lost a `model` that names one."""
    nodes = {
        "a": {"modelId": 7, "model": "gpt-4o-mini"},
        "b": {"modelId": ["x"], "model": "gpt-4o"},
        "c": {"modelId": "", "model": "llama3"},
        "d": {"modelId": "claude", "model": "gpt-4o"},
        "e": {"modelId": 7, "model": 8},
    }
    assert [f.model for f in node_facts(nodes, None)] == ["gpt-4o-mini", "gpt-4o", "llama3", "claude", None]
