"""Lone UTF-16 surrogate escapes, as the editor writes an emoji it spreads one unit a key."""

from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest

from analytics.core.json_text import loads_mended, mend_column, mend_surrogates

CASES: list[tuple[bytes, object]] = [
    (rb'{"3":"\ud83d","4":"\ude00"}', {"3": "\ufffd", "4": "\ufffd"}),  # the editor's spread halves
    (rb'"\ud83d\ude00"', "\U0001f600"),  # an escaped pair is the character
    (rb'"\uD83D\uDE00"', "\U0001f600"),  # in capitals too
    (rb'"\\ud83d"', "\\ud83d"),  # an escaped backslash: text, not an escape
    (rb'"\\\ud83d"', "\\\ufffd"),  # a backslash, then an escape
    (rb'"x\ud83dy\udc00z"', "x\ufffdy\ufffdz"),
    (rb'"\ude00\ud83d"', "\ufffd\ufffd"),  # low then high: both alone
    (rb'"\ud83d\ud83d\ude00"', "\ufffd\U0001f600"),  # a half, then a pair
    (rb'{"\udc00k":1}', {"\ufffdk": 1}),  # in a key
    (rb'"\u00e9\n"', "\u00e9\n"),  # other escapes untouched
]


@pytest.mark.parametrize(("text", "value"), CASES)
def test_lone_halves_read_as_the_replacement_character(text: bytes, value: object) -> None:
    assert loads_mended(text) == value
    assert loads_mended(text.decode()) == value
    assert loads_mended(text) == _stdlib(text)


def _stdlib(text: bytes) -> object:
    """An independent reading: the stdlib's (which keeps lone halves), each half then decoded
    as a UTF-16 decoder does (U+FFFD)."""

    def fix(v: object) -> object:
        if isinstance(v, str):
            return v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        if isinstance(v, dict):
            return {fix(k): fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(json.loads(text))


def test_what_orjson_reads_is_read_as_orjson_reads_it() -> None:
    text = b'{"a":[1,2.5,"\\u00e9\\ud83d\\ude00"],"b":null}'
    assert loads_mended(text) == orjson.loads(text)
    assert mend_surrogates(text) == text


@pytest.mark.parametrize(
    "text",
    [
        b'"\xed\xa0\xbd"',  # a surrogate as raw bytes: not UTF-8
        b'{"a":"\\ud83d" x}',  # a half and a syntax error: the syntax error is told
        b'"\\ud83',  # a truncated escape
        b"\xff",
    ],
)
def test_other_errors_stay_errors(text: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as info:
        loads_mended(text)
    assert "low surrogate" not in info.value.msg


def test_the_error_position_is_the_one_in_the_text_sent() -> None:
    text = b'{"a":"\\ud83d","b":}'
    with pytest.raises(orjson.JSONDecodeError) as info:
        loads_mended(text)
    assert info.value.pos == text.index(b"}")


def test_a_column_is_mended_where_it_holds_halves_only() -> None:
    column = pa.chunked_array(
        [
            ['{"a":"\\ud83d"}', "plain", None],
            ['"\\ud83d\\ude00"', '{"b":"\\ude00","c":"\\\\ud800"}', '{"\\ud83d":1,"\\ud83e":2}'],
        ]
    )
    mended, changed, merged = mend_column(column)
    assert mended.to_pylist() == [
        '{"a":"\\ufffd"}',
        "plain",
        None,
        '"\\ud83d\\ude00"',
        '{"b":"\\ufffd","c":"\\\\ud800"}',
        '{"\\ufffd":1,"\\ufffd":2}',
    ]
    assert changed.tolist() == [True, False, False, False, True, True]
    assert merged.tolist() == [False, False, False, False, False, True]  # two keys now read as one
    untouched, none, no_merge = mend_column(pa.array(["x", None]))
    assert untouched.to_pylist() == ["x", None] and not none.any() and not no_merge.any()
