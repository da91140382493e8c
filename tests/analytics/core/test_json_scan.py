"""The bulk scans over JSON text agree with plain Python on any text, across window edges."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.core import json_scan

texts = st.lists(st.text(alphabet='[{]}"a\\\n é', max_size=30), max_size=12)


@pytest.mark.parametrize("window", [1, 3, 7, 1 << 20])
@settings(deadline=None)  # the first example pays for importing and warming Arrow
@given(rows=texts, cut=st.integers(0, 4))
def test_opening_brackets_counts_each_rows_own(window: int, rows: list[str], cut: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(json_scan, "WINDOW", window)
        whole = pa.array(rows, pa.string())
        sliced = whole.slice(min(cut, len(rows)))  # an offset into the buffers, and bytes before it
        expected = [r.count("[") + r.count("{") for r in rows[min(cut, len(rows)) :]]
        assert json_scan.opening_brackets(sliced).tolist() == expected
        chunked = pa.chunked_array([whole.slice(0, 2), whole.slice(2)], pa.string())
        assert json_scan.opening_brackets(chunked).tolist() == [r.count("[") + r.count("{") for r in rows]


@settings(deadline=None)
@given(body=st.binary(max_size=200) | st.text(alphabet="\n\ra{", max_size=50).map(str.encode))
def test_newlines_are_where_the_newline_bytes_are(body: bytes) -> None:
    assert json_scan.newlines(body).tolist() == [i for i, b in enumerate(body) if b == 0x0A]
    assert json_scan.newlines(body).dtype == np.int64


def _json_values() -> st.SearchStrategy[object]:
    """JSON values with the numbers and strings where writers differ: fractions, big and small
    magnitudes, -0.0, control characters, escapes, non-BMP characters."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(0, 8)
        .flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p))
        .map(float),
        st.text(alphabet=st.characters(codec="utf-8")),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=12,
    )


def _writings(value: object) -> list[str]:
    """The same value as different writers write it."""
    texts = [orjson.dumps(value).decode()]
    for ensure_ascii in (True, False):
        for separators in ((",", ":"), (", ", ": ")):
            texts.append(json.dumps(value, ensure_ascii=ensure_ascii, separators=separators))
    return texts


@settings(deadline=None, max_examples=400)
@given(_json_values())
def test_text_said_to_be_in_orjson_form_is_what_orjson_writes_back(value: object) -> None:
    """The batch keeps a payload's text as sent when it is in orjson's form: any text the check
    passes must be exactly what orjson writes for what it reads."""
    texts = _writings(value)
    passed = json_scan.in_orjson_form(pa.array(texts, pa.string()))
    for text, ok in zip(texts, passed.tolist(), strict=True):
        if ok:
            assert orjson.dumps(orjson.loads(text)).decode() == text


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a":[1,2.5,null,true,false,"x\\ny\\u0001\\u001f\\"\\\\"],"b":{}}', True),
        ('{"t":0.2,"c":1787127140.0895,"big":123456789012345,"f":0.0001,"z":-0.0,"o":1.0}', True),
        ('{"p":"héllo 😀 \u2028 \u007f /"}', True),
        ('{"a": 1}', False),  # a space
        ('{"a":1.50}', False),  # a trailing zero: orjson writes 1.5 (not 1.5 then 0)
        ('{"a":-0}', False),  # orjson writes 0
        ('{"a":1e5}', False),  # an exponent
        (
            '{"a":1234567890123456}',
            False,
        ),  # 16 digits: not taken (orjson keeps it, but past 2^53 floats do not)
        ('{"a":0.00001}', False),  # below 1e-4
        ('{"a":1787127140.0895412}', False),  # 17 significant digits
        ('{"a":"\\u00e9"}', False),  # orjson writes é
        ('{"a":"\\/"}', False),  # orjson writes /
        ('{"a":"\\u001F"}', False),  # orjson writes \u001f
        ('{"a":"\\u0008"}', False),  # orjson writes \b
        ('{"a":"\\ud800"}', False),  # a lone surrogate half
    ],
)
def test_in_orjson_form_examples(text: str, ok: bool) -> None:
    assert json_scan.in_orjson_form(pa.array([text, None], pa.string())).tolist() == [ok, True]
    if ok:
        assert orjson.dumps(orjson.loads(text)).decode() == text
