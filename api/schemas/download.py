"""Download query parameters: the search filter as JSON, the search sort, a file format."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Query
from pydantic import ValidationError

from analytics.core.batch_formats import Format
from analytics.history.filters import ExecutionFilter
from analytics.history.search import ExecutionSort
from api.json_body import decode_error, validation_error

FormatParam = Annotated[Format, Query(description="csv, jsonl or parquet")]
SortParam = Annotated[ExecutionSort, Query(description="as in search")]
FilterParam = Annotated[
    str | None,
    Query(
        max_length=100_000,
        description='the search filter as JSON, e.g. {"status": {"any_": ["error"]}}',
    ),
]


def parse_filter(raw: str | None) -> ExecutionFilter:
    """The same model, so the same fields and the same 422s as search's body."""
    if raw is None or not raw.strip():
        return ExecutionFilter()
    try:  # orjson first: pydantic's JSON reader takes NaN and Infinity, which no JSON answer can echo
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise decode_error(exc, prefix=("query", "filter")) from exc
    try:
        return ExecutionFilter.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc, prefix=("query", "filter")) from exc
