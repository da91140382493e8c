"""Failure signatures keep identifiers intact (model names, versions, paths) and still fold what
varies run to run (numbers, uuids, hex ids, timestamps, quoted values); a node's own model is
folded to `<model>` so one error of a node is one signature whichever model it ran."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.core.context import Context
from analytics.insights import signatures
from tests.analytics.insights.test_insights import OWNER, _run, _store, flow_id  # noqa: F401

# message -> its signature (no model on the node)
TABLE = [
    ("Rate limit reached for gpt-4o-mini", "Rate limit reached for gpt-4o-mini"),
    ("model gpt-3.5-turbo is deprecated", "model gpt-3.5-turbo is deprecated"),
    ("claude-3-5-sonnet-20241022 overloaded", "claude-3-5-sonnet-20241022 overloaded"),
    ("llama3.1:8b not pulled", "llama3.1:8b not pulled"),
    ("unknown model text-embedding-3-small.", "unknown model text-embedding-3-small."),
    ("o1-mini does not support system messages", "o1-mini does not support system messages"),
    ("POST /v1/chat/completions via HTTP/1.1 failed", "POST /v1/chat/completions via HTTP/1.1 failed"),
    ("Timeout after 3021 ms calling req_8fK2a", "Timeout after <n> ms calling <id>"),
    ("Timeout after 15.5 ms calling req_Zq91x.", "Timeout after <n> ms calling <id>."),
    ("order-12345 not found", "order-<n> not found"),
    ("retry in 2.31s (attempt 3 of 5)", "retry in <n>s (attempt <n> of <n>)"),
    ("trace 0xdeadbeef, span 9f86d081884c7d65", "trace <hex>, span <hex>"),
    # eight digits and more are a number like fewer: one error whatever its count's length
    ("Timeout after 10000000 ms", "Timeout after <n> ms"),
    ("Queue full: 12345678 items", "Queue full: <n> items"),
    ("commit deadbeef12 missing", "commit <hex> missing"),
    ("id 123e4567-e89b-12d3-a456-426614174000 missing", "id <uuid> missing"),
    ("at 2026-01-02T10:11:12.5Z on gpt-4o", "at <ts> on gpt-4o"),
    ("user 'alice' can't log in", "user <str> can't log in"),
    ('Model "gpt-5" rate limited', "Model <str> rate limited"),
    ("node model_1739905519876_k3j9x2abq died", "node <id> died"),
    ("  many   spaces\there ", "many spaces here"),
]


@pytest.mark.parametrize(("message", "signature"), TABLE)
def test_normalise_table(message: str, signature: str) -> None:
    assert signatures.normalise(message) == signature


@pytest.mark.parametrize(
    ("message", "model", "signature"),
    [
        ("Rate limit for gpt-4o-mini: 200000 TPM", "gpt-4o-mini", "Rate limit for <model>: <n> TPM"),
        ("gpt-4o overloaded", "gpt-4o", "<model> overloaded"),
        # another model than the node's own stays intact; a longer name is not cut
        ("gpt-4o-mini overloaded", "gpt-4o", "gpt-4o-mini overloaded"),
        ("fallback to gpt-4o failed.", "gpt-4o", "fallback to <model> failed."),
    ],
)
def test_the_nodes_own_model_is_folded(message: str, model: str, signature: str) -> None:
    assert signatures.normalise(message, [model]) == signature


def test_one_error_of_a_node_is_one_signature_whatever_its_model(ctx: Context, flow_id: str) -> None:  # noqa: F811
    end = datetime(2026, 2, 1)
    runs: list[dict[str, Any]] = []
    made = [("gpt-4o-mini", 3021), ("gpt-4o", 15), ("gpt-4.1-mini", 7), ("gpt-4o-mini", 99)]
    for i, (model, ms) in enumerate(made):
        message = f"Rate limit reached for {model} after {ms} ms (request req_{i}x9a)"
        nodes = {"llm_1": {"modelId": model, "content": ""}}
        runs.append(
            _run(
                flow_id, end - timedelta(hours=i + 1), status="error", nodes=nodes, errors={"llm_1": message}
            )
        )
    # a run-level error: the models of the run's nodes are folded, any other name is kept
    down = {"global": "gpt-4o-mini is down"}
    runs.append(_run(flow_id, end - timedelta(hours=9), status="error", errors=down))  # a gpt-4o-mini node
    plain = {"input_1": {"value": "x"}}
    runs.append(_run(flow_id, end - timedelta(hours=10), status="error", nodes=plain, errors=down))
    _store(ctx, runs)
    got = {
        (r["node_id"], r["signature"]): r["count"]
        for r in signatures.failure_signatures(ctx, OWNER, flow_id, end=end).to_pylist()
    }
    assert got == {
        ("llm_1", "Rate limit reached for <model> after <n> ms (request <id>)"): 4,
        ("global", "<model> is down"): 1,
        ("global", "gpt-4o-mini is down"): 1,
    }
