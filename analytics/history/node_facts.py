"""Per-node facts read out of a payload at ingest, so node analytics never parse JSON later.

Today's payloads carry no timings or usage; where a node reports them (OpenAI-style `usage`,
`usage_details`, `tokens`, `duration_ms` beside its result) they are picked up. The node type
is the node's own `type` or, as the editor names nodes (`model_1739905519876_k3j9x2abq`), the
id's prefix. A node listed in `errors` has status error, whatever its result says.

A node with a model that reports no usage gets tokens estimated from text length (cost.py):
out from its result text (a string, or the editor's one-key-per-character spread), in from
its own prompt fields or else the run's prompt; such facts say `tokens_estimated`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analytics.core.jsonio import NOT_JSON, dumps_text

_STATUSES = frozenset({"success", "error", "aborted", "skipped", "running"})
_DURATION_KEYS = ("duration_ms", "execution_time", "elapsed_ms")
_USAGE_KEYS = ("usage", "usage_details", "tokens")
_IN_KEYS = ("prompt_tokens", "input_tokens", "prompt_eval_count")
_OUT_KEYS = ("completion_tokens", "output_tokens", "eval_count")

# a node that reports no usage: tokens estimated from its text (~4 characters a token, the
# usual rule for English with OpenAI's tokenizers); the answer says the count is estimated
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str | None) -> int | None:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else None


@dataclass(frozen=True, slots=True)
class NodeFact:
    node_id: str
    node_type: str | None
    model: str | None
    status: str
    duration_ms: int | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    error: str | None


_MAX = 2**53  # past JavaScript's safe integers a count or a duration is not a real one


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= _MAX:
        return value
    if isinstance(value, float) and 0 <= value <= _MAX:
        return round(value)
    return None


def _first_int(d: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        if key in d:
            found = _int(d[key])
            if found is not None:
                return found
    return None


def _usage(result: dict[str, Any]) -> tuple[int | None, int | None]:
    for key in _USAGE_KEYS:
        usage = result.get(key)
        if isinstance(usage, dict):
            return _first_int(usage, _IN_KEYS), _first_int(usage, _OUT_KEYS)
        if key == "tokens" and _int(usage) is not None:
            return None, _int(usage)
    return None, None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return dumps_text(value)
    except NOT_JSON:  # unlike stored_text: a fact is best effort, the payload was checked already
        return None


_PROMPT_KEYS = ("prompt", "systemPrompt", "system", "input")
_TEXT_KEYS = ("content", "text", "output", "response")


def result_text(result: Any) -> str | None:
    """The text a node produced: a string, a text field, or the editor's character spread."""
    if isinstance(result, str):
        return result
    if not isinstance(result, dict):
        return None
    chars: list[str] = []
    while (ch := result.get(str(len(chars)))) is not None and isinstance(ch, str):
        chars.append(ch)
    if chars:
        return "".join(chars)
    for key in _TEXT_KEYS:
        if isinstance(text := result.get(key), str):
            return text
    return None


def _prompt_text(result: dict[str, Any], run_prompt: str | None) -> str | None:
    for key in _PROMPT_KEYS:
        if isinstance(text := result.get(key), str) and text:
            return text
    return run_prompt


def node_facts(
    node_results: dict[str, Any] | None, errors: dict[str, Any] | None, *, prompt: str | None = None
) -> list[NodeFact]:
    """One fact per node in node_results, plus nodes that appear only in errors."""
    errors = errors or {}
    facts: list[NodeFact] = []
    for node_id, result in (node_results or {}).items():
        error = _text(errors.get(node_id))
        estimated = False
        if isinstance(result, dict):
            node_type = result.get("type") if isinstance(result.get("type"), str) else None
            # `modelId` when it is a (non-empty) string, else `model`: a number in modelId lost it
            model_id = result.get("modelId")
            model = model_id if isinstance(model_id, str) and model_id else result.get("model")
            status = result.get("status")
            tokens_in, tokens_out = _usage(result)
            duration = _first_int(result, _DURATION_KEYS)
            if isinstance(model, str) and tokens_in is None and tokens_out is None:
                tokens_in = estimate_tokens(_prompt_text(result, prompt))
                tokens_out = estimate_tokens(result_text(result))
                estimated = tokens_in is not None or tokens_out is not None
        else:
            node_type = model = status = None
            tokens_in = tokens_out = duration = None
        if node_id in errors:  # named, whatever its message (null too: no message)
            status = "error"
        elif not isinstance(status, str) or status not in _STATUSES:  # an object or a list too
            status = "success"
        facts.append(
            NodeFact(
                node_id=node_id,
                node_type=node_type or _type_from_id(node_id),
                model=model if isinstance(model, str) else None,
                status=status,
                duration_ms=duration,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                tokens_estimated=estimated,
                error=error,
            )
        )
    seen = {f.node_id for f in facts}
    for node_id, message in errors.items():
        if node_id != "global" and node_id not in seen:
            facts.append(
                NodeFact(
                    node_id, _type_from_id(node_id), None, "error", None, None, None, False, _text(message)
                )
            )
    return facts


def _type_from_id(node_id: str) -> str | None:
    prefix, sep, _ = node_id.partition("_")
    return prefix if sep and prefix.isidentifier() else None


def run_cost(models: Sequence[str | None], costs: Sequence[float | None]) -> float | None:
    """A run's cost from its nodes' models and costs: the sum of the known ones; 0 for a run
    with no model node (it owes nothing, as /cost counts it: the history said unknown, "—",
    where the cost screen said $0); unknown (None) when it has model nodes and no known cost.
    The bulk twin is node_facts_columnar's `_RUNS`."""
    known = [c for c in costs if c is not None]
    if known:
        return sum(known)
    return None if any(m is not None for m in models) else 0.0
