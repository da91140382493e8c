"""Every stored field of every imported run, against an independent computation.

The source holds the benchmark's generated runs and hostile bodies written as raw text (what
Open WebUI's SQLite may hold): payloads orjson refuses though DuckDB accepts them (NaN,
Infinity, 1e400, trailing commas, nesting past 254 levels) in any of the five columns, text that
only looks like those, pretty-printed
JSON, repeated keys, non-object payloads. The expected row is built in Python from the source
text: node facts by node_facts.py (what ingest stores), payloads as the source's text.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.core.context import Context
from analytics.openwebui import importer
from bench import import_bench
from tests.analytics.history.test_node_facts_columnar import HOSTILE, _expected

N_GENERATED = 1_200
T0 = 1_750_000_000  # mid 2025: the shipped prices cover it
DEEP = "[" * 1100 + "]" * 1100
TOO_DEEP = "[" * 254 + "]" * 254  # in an object: 255 levels, one more than orjson writes
DEEP_ENOUGH = "[" * 253 + "]" * 253  # 254 levels: a posted run may have them

# (inputs, outputs, node_results, errors, meta) as raw text; the reason it is skipped, or None
RAW: list[tuple[tuple[str | None, ...], str | None]] = [
    ((None, None, '{"model_1_a": {"modelId": "gpt-4o", "x": NaN}}', None, None), "node_results is not JSON"),
    ((None, None, '{"model_1_a": {"modelId": "gpt-4o", "x": -inf}}', None, None), "node_results is not JSON"),
    (
        (None, None, '{"model_1_a": {"modelId": "gpt-4o", "x": 1e400}}', None, None),
        "node_results is not JSON",
    ),
    ((None, None, '{"model_1_a": {"0": "a",}}', None, None), "node_results is not JSON"),
    ((None, None, '{"model_1_a": 5}', '{"model_1_a": "boom" , }', None), "errors is not JSON"),
    (
        ('{"prompt": "p", "deep": ' + DEEP + "}", None, '{"model_1_a": 5}', None, None),
        "inputs is nested more than 254 levels deep",
    ),
    ((None, '{"x": Infinity}', '{"model_1_a": 5}', None, None), "outputs is not JSON"),
    ((None, None, '{"model_1_a": 5}', None, '{"m": NaN}'), "meta is not JSON"),
    # outputs and meta by the same rule as the others (they were checked for NaN and Infinity only,
    # case-sensitively: these were stored, and their detail answered 500)
    ((None, '{"x": nan}', None, None, None), "outputs is not JSON"),
    ((None, '{"x": inf}', None, None, None), "outputs is not JSON"),
    ((None, '{"x": 1e400}', None, None, None), "outputs is not JSON"),
    ((None, '{"x": 1,}', None, None, None), "outputs is not JSON"),
    ((None, None, None, None, '{"x": nan}'), "meta is not JSON"),
    ((None, None, None, None, '{"x": -Infinity}'), "meta is not JSON"),
    ((None, None, None, None, '{"x": 1, }'), "meta is not JSON"),
    # nested past what a posted run may have, in each column (refused only past 1,024, and
    # only in some); one level less is kept
    (('{"d": ' + TOO_DEEP + "}", None, None, None, None), "inputs is nested more than 254 levels deep"),
    ((None, '{"d": ' + TOO_DEEP + "}", None, None, None), "outputs is nested more than 254 levels deep"),
    ((None, None, '{"d": ' + TOO_DEEP + "}", None, None), "node_results is nested more than 254 levels deep"),
    ((None, None, None, '{"d": ' + TOO_DEEP + "}", None), "errors is nested more than 254 levels deep"),
    ((None, None, None, None, '{"d": ' + TOO_DEEP + "}"), "meta is nested more than 254 levels deep"),
    (
        (
            '{"d": ' + DEEP_ENOUGH + "}",
            '{"d": ' + DEEP_ENOUGH + "}",
            '{"d": ' + DEEP_ENOUGH + "}",
            '{"d": ' + DEEP_ENOUGH + "}",
            '{"d": ' + DEEP_ENOUGH + "}",
        ),
        None,
    ),
    # outputs a copy of node_results: the outputs' rule and reason come first
    ((None, '{"a": "NaN", }', '{"a": "NaN", }', None, None), "outputs is not JSON"),
    ((None, '{"a": 1', '{"a": 1', None, None), "outputs is not JSON"),
    ((None, '{"a": 1e999}', '{"a": 1e999}', None, None), "outputs is not JSON"),
    ((None, None, '{"model_1_a": {"modelId": "gpt-4o"', None, None), "node_results is not JSON"),
    (("{bad", None, "{}", None, None), "inputs is not JSON"),
    # looks like the above, is not: words in strings, a 2-digit exponent, commas in text
    (
        (
            '{"prompt": "banana, nan and inf: Infinity, ]"}',
            None,
            '{"model_9_x": {"modelId": "llama3.1:8b", "0": "N", "1": "aN", "2": ",]", "e": 1e300}}',
            '{"model_9_x": "NaN in the message, }"}',
            '{"note": "Infinity"}',
        ),
        None,
    ),
    # pretty-printed, whitespace around, escapes in the spread, keys out of order, a gap
    (
        (
            ' {"prompt": "the \\u00e9 prompt"} ',
            None,
            json.dumps(
                {
                    "model_1_q": {"modelId": "mistral:7b", "1": "\u2019", "0": "\n", "2": "\\", "4": "x"},
                    "model_1_r": {
                        "label": "l",
                        "0": "a",
                        "1": "b",
                        "modelId": "qwen2.5:14b",
                        "2": "\ud83d\ude00",
                    },
                },
                indent=2,
            )
            + "\n",
            None,
            None,
        ),
        None,
    ),
    # a repeated top-level key: the last value, at the first key's place (as a dict keeps it)
    (
        (
            None,
            None,
            '{"model_1_a": {"modelId": "gpt-4o", "0": "x"}, "input_2": "s",'
            ' "model_1_a": {"modelId": "llama3.1:8b", "0": "yy", "1": "z"}}',
            '{"model_1_a": "e1", "model_1_a": "e2"}',
            None,
        ),
        None,
    ),
    # JSON of another kind where the contract has an object or null: skipped (a detail could not
    # answer it), the first such payload named
    (("[1]", "[2]", "[3]", '"s"', "[4]"), "inputs is not a JSON object or null"),
    ((None, None, "5", "true", None), "node_results is not a JSON object or null"),
    ((None, " [2]", None, None, None), "outputs is not a JSON object or null"),
    ((None, None, None, None, '"m"'), "meta is not a JSON object or null"),
    (("null", "null", "null", "null", "null"), None),
    (("", "", "", "", ""), None),
]


def _source(path: Path) -> tuple[str, str]:
    """The benchmark's Open WebUI database, then the hostile rows on one of its flows."""
    import_bench.build(path, N_GENERATED)
    con = sqlite3.connect(path)
    flow_id, user_id = con.execute("SELECT id, user_id FROM flow ORDER BY id LIMIT 1").fetchone()
    rows = []
    for i, body in enumerate(HOSTILE):
        dump = [
            None if body.get(k) is None else json.dumps(body[k]) for k in ("inputs", "node_results", "errors")
        ]
        rows.append((dump[0], dump[1] if i % 2 else None, dump[1], dump[2], '{"i": 1}'))
    rows += [texts for texts, _ in RAW]
    for i, texts in enumerate(rows):
        con.execute(
            "INSERT INTO flow_execution VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.UUID(int=i + 1)), flow_id, user_id, "error", texts[0], texts[1], texts[2], texts[3],
             7, T0 + i, texts[4]),
        )  # fmt: skip
    con.commit()
    con.close()
    return flow_id, user_id


def _not_an_object(*texts: str | None) -> str | None:
    """The skip reason of a row whose payload (in the stored order) is JSON but not an object."""
    for name, text in zip(("inputs", "outputs", "node_results", "errors", "meta"), texts, strict=True):
        if not isinstance(_loads(text), dict | None):
            return f"{name} is not a JSON object or null"
    return None


def _loads(text: str | None) -> Any:
    return None if text in (None, "", "null") else orjson.loads(text)  # type: ignore[arg-type]


def _stored(ctx: Context) -> dict[str, dict[str, Any]]:
    cols = (
        "id::VARCHAR AS id, flow_id, user_id, status, execution_time, epoch(created_at)::BIGINT AS created_at,"
        " inputs::VARCHAR AS inputs, outputs::VARCHAR AS outputs, outputs_same, node_results::VARCHAR AS"
        " node_results, errors::VARCHAR AS errors, meta::VARCHAR AS meta, node_count, tokens_in, tokens_out,"
        " tokens_estimated, cost, flow_version, replay_of, nodes"
    )
    rows = ctx.store.read(lambda c: c.sql(f"SELECT {cols} FROM executions").to_arrow_table().to_pylist())
    return {r["id"]: r for r in rows}


def test_every_stored_field_equals_the_python_rules(ctx: Context, tmp_path: Path) -> None:
    source = tmp_path / "webui.db"
    _source(source)
    summary = importer.import_openwebui(ctx, f"sqlite:///{source}", chunk_rows=500)
    stored = _stored(ctx)
    skipped = {i["id"]: i["reason"] for i in summary.issues if i["action"] == "skipped"}
    con = sqlite3.connect(source)
    rows = con.execute(
        "SELECT id, flow_id, user_id, status, execution_time, created_at, CAST(inputs AS TEXT),"
        " CAST(outputs AS TEXT), CAST(node_results AS TEXT), CAST(errors AS TEXT), CAST(meta AS TEXT)"
        " FROM flow_execution"
    ).fetchall()
    versions = dict(con.execute("SELECT id, updated_at FROM flow").fetchall())
    raw_reasons = {str(uuid.UUID(int=len(HOSTILE) + i + 1)): r for i, (_, r) in enumerate(RAW)}
    assert len(rows) == N_GENERATED + len(HOSTILE) + len(RAW)
    for eid, fid, uid, status, ms, created, inputs, outputs, node_results, errors, meta in rows:
        reason = raw_reasons.get(eid) or _not_an_object(inputs, outputs, node_results, errors, meta)
        if reason:
            assert skipped.get(eid) == reason and eid not in stored, eid
            continue
        assert eid not in skipped, (eid, skipped.get(eid))
        got = stored[eid]
        day = datetime.fromtimestamp(created, UTC).date()
        run = {"inputs": _loads(inputs), "node_results": _loads(node_results), "errors": _loads(errors)}
        expected = _expected(run, day, ctx.prices)
        same = outputs not in (None, "", "null") and outputs == node_results
        text = lambda t: None if t in (None, "", "null") else t  # noqa: E731
        expected |= {
            "id": eid, "flow_id": fid, "user_id": uid, "status": status, "execution_time": ms,
            "created_at": created, "inputs": text(inputs), "outputs": None if same else text(outputs),
            "outputs_same": same, "node_results": text(node_results), "errors": text(errors),
            "meta": text(meta) or "{}", "replay_of": None,
        }  # fmt: skip
        assert (got.pop("flow_version") == "unknown") == (created < versions[fid])
        assert got == expected, eid


@pytest.mark.parametrize("chunk_rows", [1, 7])
def test_tiny_chunks_store_the_same(ctx: Context, tmp_path: Path, chunk_rows: int) -> None:
    """Chunks of one run: a chunk without a model node, or with nothing to estimate, still goes in."""
    source = tmp_path / "webui.db"
    import_bench.build(source, 20)
    importer.import_openwebui(ctx, f"sqlite:///{source}", chunk_rows=chunk_rows)
    assert len(_stored(ctx)) == 20
