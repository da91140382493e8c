"""An ad-hoc SQL answer's Arrow columns as Python values that JSON (or a printed table) can hold,
whatever the query made.

pyarrow's `to_pylist` raises OverflowError on a DATE or TIMESTAMP outside Python's years 1 to
9999 (DuckDB's `'infinity'::DATE`, `DATE '10000-01-01'`, `'0000-01-01'::DATE`, `TIMESTAMP
'294247-01-01'`), turns TIME '24:00:00' into 00:00:00, and hands NaN and infinite doubles on
(JSON has no such numbers). So, column by column (nested lists, structs, maps and unions
included): values Python can hold come as `to_pylist` gives them; a date or timestamp it cannot
hold comes as DuckDB's own text (`infinity`, `-infinity`, `10000-01-01`, `0001-01-01 (BC)`,
`294247-01-01 00:00:00`, `+00` after a TIMESTAMPTZ); TIME 24:00 as `24:00:00`; a NaN or
infinite float as the string `NaN`, `Infinity` or `-Infinity`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

DATE_INFINITY = 2**31 - 1  # DuckDB's DATE 'infinity' (and minus it, '-infinity'), in days
TIMESTAMP_INFINITY = 2**63 - 1  # DuckDB's TIMESTAMP 'infinity' (and minus it), in any unit
_EPOCH = dt.date(1970, 1, 1)
_MIN_DAYS = (dt.date.min - _EPOCH).days  # Python's date range, in days from the epoch
_MAX_DAYS = (dt.date.max - _EPOCH).days
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_FRACTION_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count from 1970-01-01, for any count
    (H. Hinnant's civil_from_days); year 0 is 1 BC."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def date_text(days: int) -> str:
    """A DATE as DuckDB writes it (`CAST(d AS VARCHAR)`)."""
    if abs(days) == DATE_INFINITY:
        return "infinity" if days > 0 else "-infinity"
    year, month, day = _civil(days)
    if year > 0:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return f"{1 - year:04d}-{month:02d}-{day:02d} (BC)"


def timestamp_text(value: int, unit: str, tz: bool) -> str:
    """A TIMESTAMP (`tz`: TIMESTAMPTZ, shown in UTC) as DuckDB writes it."""
    if abs(value) == TIMESTAMP_INFINITY:
        return "infinity" if value > 0 else "-infinity"
    per_second = _PER_SECOND[unit]
    days, rest = divmod(value, 86_400 * per_second)
    seconds, fraction = divmod(rest, per_second)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    clock = f"{hour:02d}:{minute:02d}:{second:02d}"
    if fraction:
        clock += "." + f"{fraction:0{_FRACTION_DIGITS[unit]}d}".rstrip("0")
    return f"{date_text(days)} {clock}{'+00' if tz else ''}"  # DuckDB: '0001-01-01 (BC) 00:00:00'


def _float(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _needs_care(t: pa.DataType) -> bool:
    """Whether `to_pylist` may fail or mislead on this type (or a type nested in it)."""
    if pa.types.is_temporal(t) or pa.types.is_floating(t):
        return True
    if pa.types.is_dictionary(t):
        return _needs_care(t.value_type)
    return any(_needs_care(t.field(i).type) for i in range(t.num_fields))


def _range(ints: pa.Array[Any]) -> tuple[int, int] | None:
    """The smallest and largest value (as integers), or None when all are NULL."""
    bounds: Any = pc.min_max(ints).as_py()
    if bounds["min"] is None:
        return None
    return int(bounds["min"]), int(bounds["max"])


def _temporal(arr: pa.Array[Any]) -> list[Any]:
    t: Any = arr.type
    ints: Any
    if pa.types.is_date32(t):
        ints, low, high = arr.cast(pa.int32()), _MIN_DAYS, _MAX_DAYS

        def text(v: int) -> str:
            return date_text(v)

    elif pa.types.is_timestamp(t):
        per_day = 86_400 * _PER_SECOND[t.unit]
        ints, low, high = arr.cast(pa.int64()), _MIN_DAYS * per_day, (_MAX_DAYS + 1) * per_day - 1
        if abs(high) >= TIMESTAMP_INFINITY:  # nanoseconds: every finite value fits
            low, high = -TIMESTAMP_INFINITY + 1, TIMESTAMP_INFINITY - 1
        unit, tz = t.unit, t.tz is not None

        def text(v: int) -> str:
            return timestamp_text(v, unit, tz)

    elif pa.types.is_time(t):
        day = 86_400 * _PER_SECOND[t.unit]
        ints, low, high = arr.cast(pa.int64() if pa.types.is_time64(t) else pa.int32()), 0, day - 1

        def text(v: int) -> str:
            return "24:00:00" if v == day else timestamp_text(v, t.unit, False).split(" ", 1)[1]

    else:  # date64, durations, intervals: pyarrow's values (DuckDB makes none of these but intervals)
        return _each(arr)
    bounds = _range(ints)
    if bounds is None or (low <= bounds[0] and bounds[1] <= high):
        return _each(arr)
    return [
        None if v is None else (text(v) if not low <= v <= high else arr[i].as_py())
        for i, v in enumerate(ints.to_pylist())
    ]


def _each(arr: pa.Array[Any]) -> list[Any]:
    """`to_pylist`, and should it still fail, value by value (the failing ones as text)."""
    try:
        return arr.to_pylist()
    except (OverflowError, ValueError, ArithmeticError, pa.ArrowException):
        pass
    values: list[Any] = []
    for scalar in arr:
        try:
            values.append(scalar.as_py())
        except (OverflowError, ValueError, ArithmeticError, pa.ArrowException):
            values.append(str(scalar))
    return values


def python_values(column: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[Any]:
    """One column's values, ready for orjson (which knows dates, datetimes, Decimals as strings
    through the caller's default, and so on)."""
    if isinstance(column, pa.ChunkedArray):
        return [v for chunk in column.chunks for v in python_values(chunk)]
    arr: Any = column  # a list, struct, map... array: pyarrow-stubs type them all as Array
    t: Any = arr.type
    if not _needs_care(t):
        return _each(arr)
    valid = arr.is_valid().to_pylist()
    if pa.types.is_floating(t):
        return [_float(v) for v in arr.to_pylist()]
    if pa.types.is_temporal(t):
        return _temporal(arr)
    if pa.types.is_dictionary(t):
        return python_values(arr.dictionary_decode())
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, python_values(f)) for i, f in enumerate(arr.flatten())]
        return [{name: vs[i] for name, vs in fields} if ok else None for i, ok in enumerate(valid)]
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        flat = python_values(arr.values.slice(arr.offset * size, len(arr) * size))
        return [flat[i * size : (i + 1) * size] if ok else None for i, ok in enumerate(valid)]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        offsets = arr.offsets.to_pylist()
        start = offsets[0]
        flat = python_values(arr.values.slice(start, offsets[-1] - start))
        if pa.types.is_map(t):  # as to_pylist gives a map: a list of (key, value)
            flat = [(e["key"], e["value"]) for e in flat]
        return [
            flat[offsets[i] - start : offsets[i + 1] - start] if ok else None for i, ok in enumerate(valid)
        ]
    if pa.types.is_union(t):
        values: list[Any] = []
        for scalar in arr:
            child = scalar.value
            values.append(None if child is None else python_values(pa.array([child], type=child.type))[0])
        return values
    return _each(arr)


def python_columns(table: pa.Table) -> list[list[Any]]:
    return [python_values(column) for column in table.columns]


# DuckDB's to_json writes a NaN or infinite double as a bare NaN / Infinity / -Infinity, which is
# not JSON: those tokens (outside strings) become the strings the JSON answer uses.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')


def _quote_constant(match: re.Match[str]) -> str:
    token = match.group(0)
    return token if token.startswith('"') else f'"{token}"'


def json_line(line: str) -> str:
    """One line of DuckDB's `to_json`, made valid JSON."""
    if "NaN" not in line and "Infinity" not in line:
        return line
    return _JSON_TOKEN.sub(_quote_constant, line)


def json_lines_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of DuckDB-rendered JSON lines (one string column), made valid JSON."""
    column = batch.column(0)
    if not pc.any(pc.match_substring_regex(column, "NaN|Infinity")).as_py():
        return batch
    lines = [None if v is None else json_line(v) for v in column.to_pylist()]
    return pa.RecordBatch.from_arrays([pa.array(lines, type=column.type)], schema=batch.schema)
