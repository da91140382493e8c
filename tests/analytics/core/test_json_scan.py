"""The bulk scans over JSON text agree with plain Python on any text, across window edges."""

from __future__ import annotations

import numpy as np
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
