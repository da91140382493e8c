"""The columnar node facts equal node_facts.py's, fact by fact, on generated and hostile bodies."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest

from analytics.cost.prices import PriceTable, replace_prices, shipped_prices
from analytics.history.ingest import NODE_STRUCT
from analytics.history.node_facts import node_facts
from analytics.history.node_facts_columnar import columnar_facts, drop_facts, facts_into
from bench import generate


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE prices (model_pattern VARCHAR, input_per_million DOUBLE, output_per_million DOUBLE,"
        " valid_from DATE)"
    )
    replace_prices(con, shipped_prices())
    table = PriceTable()
    table.load(con)
    return table


def _text(value: Any) -> str:
    return "" if value is None else json.dumps(value)


def _expected(run: dict[str, Any], day: date, prices: PriceTable) -> dict[str, Any]:
    """What ingest's Python path stores for a run (ingest._build's aggregation)."""
    nr, er, inp = run.get("node_results"), run.get("errors"), run.get("inputs")
    prompt = inp.get("prompt") if isinstance(inp, dict) else None
    facts = node_facts(
        nr if isinstance(nr, dict) else None,
        er if isinstance(er, dict) else None,
        prompt=prompt if isinstance(prompt, str) else None,
    )
    costs = [prices.cost(f.model, day, f.tokens_in, f.tokens_out) for f in facts]
    ins = [f.tokens_in for f in facts if f.tokens_in is not None]
    outs = [f.tokens_out for f in facts if f.tokens_out is not None]
    known = [c for c in costs if c is not None]
    return {
        "node_count": len(facts),
        "tokens_in": min(sum(ins), 2**62) if ins else None,
        "tokens_out": min(sum(outs), 2**62) if outs else None,
        "tokens_estimated": any(f.tokens_estimated for f in facts),
        # no model node: 0, it owes nothing; model nodes none of which is priced: unknown
        "cost": sum(known) if known else (None if any(f.model is not None for f in facts) else 0.0),
        "nodes": [
            dict(
                zip(
                    NODE_STRUCT.names,
                    (f.node_id, f.node_type, f.model, f.status, f.duration_ms, f.tokens_in,
                     f.tokens_out, f.tokens_estimated, c, f.error),
                    strict=True,
                )
            )
            for f, c in zip(facts, costs, strict=True)
        ],
    }  # fmt: skip


def _compare(runs: list[dict[str, Any]], days: list[date], prices: PriceTable, dump: Any = _text) -> None:
    table = pa.table(
        {
            "rn": pa.array(range(len(runs)), pa.int64()),
            "node_results": [dump(r.get("node_results")) for r in runs],
            "errors": [dump(r.get("errors")) for r in runs],
            "inputs": [dump(r.get("inputs")) for r in runs],
            "day": pa.array(days, pa.date32()),
        }
    )
    got = columnar_facts(table, prices).to_pylist()
    assert [g["rn"] for g in got] == list(range(len(runs)))
    for run, day, g in zip(runs, days, got, strict=True):
        g.pop("rn")
        assert g == _expected(run, day, prices), run


def test_every_fact_of_generated_runs_equals_the_python_function(prices: PriceTable) -> None:
    runs = list(itertools.islice(generate.generate_runs(3000, seed=7), 3000))
    days = [datetime.fromtimestamp(r["created_at"], UTC).date() for r in runs]
    # the bodies exercise what matters: spreads, usage, estimates, errors, priced and unpriced models
    assert any(r["errors"] for r in runs)
    _compare(runs, days, prices)
    _compare(runs[:500], days[:500], prices, dump=lambda v: "null" if v is None else orjson.dumps(v).decode())


HOSTILE: list[dict[str, Any]] = [
    {"node_results": None, "errors": None},
    {"node_results": {}, "errors": {"global": "boom", "model_1_x": "failed", "n": None}},
    {"node_results": [1, 2], "errors": ["x"]},
    {
        "inputs": {"prompt": "héllo wörld, the run's own prompt"},
        "node_results": {
            "model_1_a": {"modelId": "gpt-4o", "0": "a", "1": "bc", "3": "skipped"},
            "model_1_b": {"modelId": "", "model": "gpt-4o-mini", "content": "", "text": "never read"},
            "model_1_c": {"modelId": 0, "model": 5, "usage": {"prompt_tokens": 2.5, "completion_tokens": 3.5}},
            "model_1_d": {"model": "llama3.1:8b", "usage": "n/a", "usage_details": {"input_tokens": -1,
                          "output_tokens": True, "eval_count": 9}},
            "model_1_e": {"modelId": "gpt-4o", "tokens": 12.5, "duration_ms": -3, "execution_time": 7.5},
            "model_1_f": {"modelId": "gpt-4o", "tokens": {"prompt_eval_count": 2**60}, "elapsed_ms": 2**53 + 1},
            "model_1_g": {"modelId": "claude-3-5-sonnet", "prompt": "", "systemPrompt": "sys 😀 e\u0301",
                          "0": 1, "1": "ignored", "response": "r"},
            "model_1_h": {"modelId": "no-such-model", "0": "", "status": "running"},
            "model_1_i": {"modelId": ["x"], "model": "gpt-4o", "output": "out", "status": "weird"},
            "model_1_j": {"modelId": "gpt-4o", "usage": {}, "status": "skipped", "type": "custom"},
            "model_1_k": {"modelId": "gpt-4o", "type": "", "01": "x", "0": "y", "2": "z"},
            # the spread's fast way (its keys in order, read off the text) and where it must not decide
            "model_1_l": {"0": "a", "1": "b", "label": "x", "2": "c", "modelId": "gpt-4o"},
            "model_1_m": {"0": "a", "1": "b", "modelId": "gpt-4o", "x": {"2": 1}, "y": "\"2\":"},
            "model_1_n": {**{str(i): "é" for i in range(10_050)}, "modelId": "gpt-4o"},
            "model_1_o": {"0": "a", "1": "b\"c", "2": "d", "modelId": "gpt-4o", "prompt": "p"},
            "model_1_p": {"0": "😀", "1": "", "2": "x y", "modelId": "gpt-4o", "content": "never read"},
            "input_9": "a string result",
            "9bad_x": 12,
            "_lead": None,
            "plain": {"status": "aborted"},
            # a status that is not a string (an object, a list: unhashable): success
            "odd_1": {"status": {}}, "odd_2": {"status": [1]}, "odd_3": {"status": 1},
            "ünï_x": {"label": "unicode prefix"},
            # identifiers to str.isidentifier beyond letters and digits: a combining mark, a
            # middle dot, U+2118 (Other_ID_Start); and a superscript digit, which is not one
            "e\u0301t_1": {}, "x\u00b7y_2": 1, "\u2118_3": None, "x\u00b2_4": {},
            "output_1": {"0": "a", "1": "b", "label": "Output"},
        },
        "errors": {"model_1_a": "Network error", "plain": {"code": 5, "why": ["x", 1.5]}, "input_9": None,
                   "extra_node_7": "only in errors", "global": "run failed", "zz": 3},
    },
]  # fmt: skip


def test_hostile_bodies_follow_the_same_rules(prices: PriceTable) -> None:
    days = [date(2025, 6, 1)] * len(HOSTILE)
    _compare(HOSTILE, days, prices)
    _compare(HOSTILE, [date(2020, 1, 1)] * len(HOSTILE), prices)  # before any price: no cost


# raw texts as a source may hold them: (node_results, errors, inputs)
RAW: list[tuple[str, str, str]] = [
    # a repeated top-level key: a dict keeps it at its first place with its last value
    ('{"model_1_a": {"modelId": "gpt-4o", "0": "x"}, "input_2": "s", "model_1_a": {"modelId": "llama3.1:8b",'
     ' "0": "yy", "1": "z"}}', '{"model_1_a": "e1", "model_1_a": "e2", "zz_1": 1, "zz_1": null}', ""),
    # pretty-printed, whitespace around, escapes in the spread, keys out of order, a gap, a long index
    (" " + json.dumps({"model_1_q": {"modelId": "mistral:7b", "1": "\u2019", "0": "\n", "2": "\\", "4": "x"},
                       "model_1_r": {"label": "l", "0": "a", "1": "b", "modelId": "qwen2.5:14b", "2": "\ud83d\ude00"},
                       "model_1_s": {"modelId": "gemma2:9b", "0": "a", "1": "b", "2": 3, "3": "c"},
                       "model_1_t": {"modelId": "gemma2:9b", "0": "a", "99999999999999999999": "b"}},
                      indent=2) + "\n", "", ' {"prompt": "the \\u00e9 prompt"} '),
    # the run's prompt from inputs that are not JSON, or not an object
    ('{"model_1_a": {"modelId": "gpt-4o", "0": "x"}}', "{bad", "{bad"),
    ('{"model_1_a": {"modelId": "gpt-4o", "0": "x"}}', "[1]", '["prompt"]'),
    ('{"model_1_a": {"modelId": "gpt-4o", "0": "x"}}', "", '{"prompt": 5}'),
    ('{"model_1_a": {"modelId": "gpt-4o"}', "", '{"prompt": "not reached"}'),  # node_results not JSON
    ("5", "true", "null"),
]  # fmt: skip


def test_raw_texts_follow_the_same_rules(prices: PriceTable) -> None:
    def loads(text: str) -> Any:
        try:
            return None if text in ("", "null") else orjson.loads(text)
        except orjson.JSONDecodeError:
            return None

    runs = [{"node_results": loads(n), "errors": loads(e), "inputs": loads(i)} for n, e, i in RAW]
    table = pa.table(
        {
            "rn": pa.array(range(len(RAW)), pa.int64()),
            "node_results": [r[0] for r in RAW],
            "errors": [r[1] for r in RAW],
            "inputs": [r[2] for r in RAW],
            "day": pa.array([date(2025, 6, 1)] * len(RAW), pa.date32()),
        }
    )
    got = columnar_facts(table, prices).to_pylist()
    for run, g in zip(runs, got, strict=True):
        g.pop("rn")
        assert g == _expected(run, date(2025, 6, 1), prices), run


def test_drop_facts_leaves_no_table_of_facts_into(prices: PriceTable) -> None:
    """A connection kept for the next chunks (the batch's bulk path) holds nothing of the last."""
    runs = pa.table(
        {
            "rn": pa.array([0], pa.int64()),
            "node_results": ['{"llm_1": {"model": "gpt-4o", "prompt": "hi"}}'],
            "errors": ['{"llm_1": "boom"}'],
            "inputs": [None],
            "day": pa.array([date(2026, 11, 1)], pa.date32()),
        }
    )
    con = duckdb.connect()
    con.register("runs", runs)
    facts_into(con, "runs", prices)
    tables = "SELECT table_name FROM duckdb_tables() WHERE temporary"
    assert len(con.execute(tables).fetchall()) >= 5
    drop_facts(con)
    assert con.execute(tables).fetchall() == []
