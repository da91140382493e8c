"""The batch's fast read takes what it should, and its checks of the scalars are pydantic's.

Whole batches through it are compared with the per-item path in test_batch_bulk.py (its hostile
items are posted with and without spaces); here: that the benchmark's runs do take it (else the
comparison there could pass with the fast read never used), and that `plain_scalars` gives the
values pydantic gives, or leaves the item to pydantic.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from analytics.history import batch_bulk, batch_sliced, ingest
from bench import generate


def test_the_benchmarks_runs_are_sliced_with_their_scalars_checked() -> None:
    runs = list(itertools.islice(generate.generate_runs(300, seed=7), 300))
    lines = batch_bulk.Lines.of(b"\n".join(orjson.dumps(r) for r in runs)).array()
    assert lines is not None
    table, checked, rest = batch_sliced.sliced(lines, 200)
    assert rest == [] and table.num_rows == 300 and sorted(checked) == list(range(300))
    for i, run in enumerate(runs):
        row = table.slice(i, 1).to_pylist()[0]
        for key in batch_sliced.PAYLOADS:  # the text sent, which is orjson's
            expected = None if run.get(key) is None else orjson.dumps(run[key]).decode()
            assert row[key] == expected, (i, key)
        assert checked[i].id == run["id"] and checked[i].execution_time == run["execution_time"]


def test_lines_not_taken_are_left_for_duckdb() -> None:
    fid = str(uuid.uuid4())
    base = {"flow_id": fid, "status": "success", "execution_time": 5}
    lines = [
        orjson.dumps(base),  # taken
        json.dumps(base).encode(),  # spaces between the fields only: taken (its payloads are none)
        orjson.dumps({**base, "inputs": {"a": 1}})[:-2] + b', "b": 2}}',  # a space in a payload
        orjson.dumps({**base, "replay_of": str(uuid.uuid4())}),
        orjson.dumps({**base, "flow": {"nodes": [], "edges": []}}),
        orjson.dumps({**base, "inputs": "text"}),
        orjson.dumps({**base, "meta": {"k": 1.50}}).replace(b"1.5", b"1.50"),
        orjson.dumps({**base, "flow_id": "a\\u0062"}).replace(b"\\\\", b"\\"),  # an escape in a scalar
        orjson.dumps({**base, "meta": {"k": 1}}).replace(b'{"k":1}', b"[" * 201 + b"]" * 201),  # deep
        b"not json",
        b"[1]",
        b'{"flow_id": 1,}',
    ]
    table, checked, rest = batch_sliced.sliced(pa.array([line.decode() for line in lines], pa.string()), 200)
    assert table.column("rn").to_pylist() == [0, 1] and sorted(checked) == [0, 1]
    assert rest == list(range(2, len(lines)))


def _dump(value: Any) -> bytes:
    """JSON as a client may write it (integers past 64 bits too, which orjson refuses)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_IDS = st.one_of(
    st.none(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.text(max_size=40),
    st.integers(),
)
_TEXTS = st.one_of(
    st.none(),
    st.text(min_size=0, max_size=3),
    st.text(min_size=250, max_size=260),
    st.sampled_from(["é" * 255, "é" * 256, "😀" * 255, "u001", " x ", "x" * 255, "x" * 256]),
    st.integers(),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 2**53, 2**53 + 1, -1, 1_700_000_000, 253402300799, 253402300800, -62135596800]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e11, max_value=1e11),
    st.booleans(),
    st.text(max_size=25),
    st.sampled_from(["2026-12-01T00:00:00Z", "2026-12-01", "1700000000", "not a time"]),
)


@settings(deadline=None, max_examples=500)
@given(
    st.fixed_dictionaries(
        {
            "id": _IDS,
            "flow_id": _TEXTS,
            "status": st.sampled_from(["success", "error", "aborted", "SUCCESS", "running", None, 1]),
            "execution_time": _NUMBERS,
            "created_at": st.one_of(st.none(), _NUMBERS),
            "user_id": _TEXTS,
            "flow_version": _TEXTS,
        }
    )
)
def test_plain_scalars_are_what_pydantic_reads(scalars: dict[str, Any]) -> None:
    values = [_dump(scalars[k]) for k in batch_sliced.SCALARS]
    if any(b"\\" in v for v in values):  # such a line is not sliced
        return
    plain = batch_sliced.plain_scalars(values)
    try:
        form = ingest.ExecutionImport.model_validate_json(_dump(scalars))
    except ValidationError:
        assert plain is None, scalars  # refused: pydantic words it, one by one
        return
    if plain is not None:
        assert plain == batch_bulk._scalars(form), scalars


@pytest.mark.parametrize(
    "created_at", [None, 0, 1_700_000_000, 1787127140.0895412, 1_700_000_000.5, -5, 1e-7, 253402300799.5]
)
def test_the_common_forms_are_checked_here(created_at: Any) -> None:
    """Else the fast read would leave every run to pydantic, and the test above pass regardless."""
    scalars = {
        "id": str(uuid.uuid4()),
        "flow_id": "f-1",
        "status": "error",
        "execution_time": 2**53,
        "created_at": created_at,
        "user_id": "u1",
        "flow_version": "v1",
    }
    values = [orjson.dumps(scalars[k]) for k in batch_sliced.SCALARS]
    form = ingest.ExecutionImport.model_validate_json(orjson.dumps(scalars))
    plain = batch_sliced.plain_scalars(values)
    if created_at == 1e-7:  # an exponent: pydantic reads it
        assert plain is None
        return
    assert plain == batch_bulk._scalars(form)
