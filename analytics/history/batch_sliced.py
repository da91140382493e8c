"""The batch's fast read: a line whose payloads are already in the form the store keeps is not
parsed into values and written back; its payloads are sliced out of it as sent.

The store keeps each payload as orjson writes it (`orjson.dumps(orjson.loads(text))`). Most
senders write that form already (orjson, JavaScript's `JSON.stringify`: no spaces, no needless
escapes, numbers in their shortest form). For such a line, msgspec checks the whole line is JSON
and slices out each field's text (`msgspec.Raw`, nothing decoded), and Arrow's RE2 checks each
payload is in orjson's form (`json_scan.in_orjson_form`): then the text sent is the text orjson
would write, and is kept. The common scalars (a UUID id, a plain flow id, a known status, whole
milliseconds, epoch seconds) are checked here to the values pydantic gives them; any other
scalar goes to pydantic, as every line DuckDB reads does (`batch_bulk._validate`).

A line this module does not take (a payload not in orjson's form, an escape in a scalar, too
deep, not JSON, `replay_of` or `flow` given, a payload that is not an object) is read by DuckDB
as before, which writes its payloads back as JSON text, or goes item by item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from analytics.core.clock import from_epoch_input, in_utc
from analytics.core.json_scan import in_orjson_form, opening_brackets
from analytics.history.ingest import MAX_EXECUTION_TIME

PAYLOADS = ("inputs", "outputs", "node_results", "errors", "meta")
# the scalars pydantic checks (ExecutionImport's), in this order in `scalars`' JSON objects
SCALARS = ("id", "flow_id", "status", "execution_time", "created_at", "user_id", "flow_version")
# the columns of a chunk's read: its line in the chunk, the scalars as one JSON object (NULL when
# checked here, or when the line is left to the per-item path), the payloads' text (NULL for null)
_READ_FIELDS: list[pa.Field[Any]] = [pa.field("rn", pa.int32()), pa.field("scalars", pa.string())]
READ_SCHEMA = pa.schema(_READ_FIELDS + [pa.field(k, pa.string()) for k in PAYLOADS])

_NULL = msgspec.Raw(b"null")


class _Fields(msgspec.Struct):
    """A line's fields that the batch reads, each as its JSON text: msgspec checks the whole line
    is JSON and slices them out, decoding nothing (a key given twice: the last, as orjson)."""

    id: msgspec.Raw = _NULL
    flow_id: msgspec.Raw = _NULL
    status: msgspec.Raw = _NULL
    execution_time: msgspec.Raw = _NULL
    created_at: msgspec.Raw = _NULL
    user_id: msgspec.Raw = _NULL
    flow_version: msgspec.Raw = _NULL
    inputs: msgspec.Raw = _NULL
    outputs: msgspec.Raw = _NULL
    node_results: msgspec.Raw = _NULL
    errors: msgspec.Raw = _NULL
    meta: msgspec.Raw = _NULL
    replay_of: msgspec.Raw = _NULL
    flow: msgspec.Raw = _NULL


_DECODE = msgspec.json.Decoder(_Fields).decode
_KEYS = tuple(k.encode() for k in SCALARS)


@dataclass(frozen=True, slots=True)
class Scalars:
    """A run's scalars as pydantic's ExecutionImport holds them (`created_at` naive UTC)."""

    id: str | None
    flow_id: str
    status: str
    execution_time: int
    created_at: datetime | None
    user_id: str | None
    flow_version: str | None


_UUID = re.compile(rb'"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
_WHOLE = re.compile(rb"0|[1-9][0-9]{0,15}")
_EPOCH = re.compile(rb"-?(?:0|[1-9][0-9]{0,15})(\.[0-9]{1,20})?")  # no exponent
_STATUS = {b'"success"': "success", b'"error"': "error", b'"aborted"': "aborted"}


def _text(raw: bytes) -> str | None:
    """A JSON string without escapes (the line has none in its scalars), 1-255 characters."""
    if raw[:1] != b'"':
        return None
    value = raw[1:-1].decode()
    return value if 1 <= len(value) <= 255 else None


def plain_scalars(values: list[bytes]) -> Scalars | None:
    """The scalars' JSON texts (SCALARS' order, no backslash in any) as pydantic reads them, when
    each is in a common form; else None (pydantic decides, and words any refusal)."""
    id_, flow_id, status, ms, created, user_id, version = values
    status_value = _STATUS.get(status)
    flow = _text(flow_id)
    if status_value is None or flow is None or not _WHOLE.fullmatch(ms) or int(ms) > MAX_EXECUTION_TIME:
        return None
    if id_ != b"null" and not _UUID.fullmatch(id_):
        return None
    at: datetime | None = None
    if created != b"null":
        number = _EPOCH.fullmatch(created)
        if number is None:
            return None
        try:  # as pydantic's JSON reading gives it (an int, or a float with a fraction)
            at = in_utc(from_epoch_input(float(created) if number.group(1) else int(created)))
        except ValueError:
            return None
    user = None if user_id == b"null" else _text(user_id)
    flow_version = None if version == b"null" else _text(version)
    if (user is None and user_id != b"null") or (flow_version is None and version != b"null"):
        return None
    return Scalars(
        id=None if id_ == b"null" else id_[1:-1].decode(),
        flow_id=flow,
        status=status_value,
        execution_time=int(ms),
        created_at=at,
        user_id=user,
        flow_version=flow_version,
    )


def sliced(lines: pa.Array[Any], max_brackets: int) -> tuple[pa.Table, dict[int, Scalars], list[int]]:
    """The lines this module takes, as READ_SCHEMA rows; the scalars it checked, by line; and the
    other lines (for DuckDB's read). `max_brackets`: more `[`/`{` than that and a line is left
    (orjson may find it too deep)."""
    offset_buffer, data_buffer = lines.buffers()[1], lines.buffers()[2]
    if len(lines) == 0 or offset_buffer is None or data_buffer is None:
        return READ_SCHEMA.empty_table(), {}, list(range(len(lines)))
    offsets = np.frombuffer(memoryview(offset_buffer), np.int32)[lines.offset : lines.offset + len(lines) + 1]
    data = memoryview(data_buffer)
    deep = (opening_brackets(lines) > max_brackets).tolist()
    rns: list[int] = []
    rest: list[int] = []
    scalars: list[bytes | None] = []
    checked: dict[int, Scalars] = {}
    payloads: list[list[bytes | None]] = [[] for _ in PAYLOADS]
    outputs_to_check: list[bytes | None] = []  # an `outputs` equal to `node_results` is checked once
    for i, (start, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)):
        try:
            f = None if deep[i] else _DECODE(data[start:end])
        except msgspec.DecodeError:  # not JSON, not an object, ...: DuckDB's read, then one by one
            f = None
        if f is None or bytes(f.replay_of) != b"null" or bytes(f.flow) != b"null":
            rest.append(i)
            continue
        texts = [bytes(f.inputs), bytes(f.outputs), bytes(f.node_results), bytes(f.errors), bytes(f.meta)]
        values = [bytes(f.id), bytes(f.flow_id), bytes(f.status), bytes(f.execution_time),
                  bytes(f.created_at), bytes(f.user_id), bytes(f.flow_version)]  # fmt: skip
        # an escape in a scalar (a lone surrogate half, say) is read as the per-item path reads it
        if any(t[:1] != b"{" and t != b"null" for t in texts) or any(b"\\" in v for v in values):
            rest.append(i)
            continue
        rns.append(i)
        plain = plain_scalars(values)
        if plain is not None:
            checked[i] = plain
            scalars.append(None)
        else:
            scalars.append(b"{" + b",".join(b'"%s":%s' % kv for kv in zip(_KEYS, values, strict=True)) + b"}")
        for column, text in zip(payloads, texts, strict=True):
            column.append(None if text == b"null" else text)
        outputs_to_check.append(None if texts[1] == texts[2] else payloads[1][-1])
    columns = [pa.array(c, pa.string()) for c in payloads]
    ok = np.ones(len(rns), np.bool_)
    for checked_column in [columns[0], pa.array(outputs_to_check, pa.string()), *columns[2:]]:
        ok &= in_orjson_form(checked_column)
    table = pa.table(
        [pa.array(rns, pa.int32()), pa.array(scalars, pa.string()), *columns], schema=READ_SCHEMA
    )
    if not ok.all():
        table = table.filter(pa.array(ok))
        for j in np.flatnonzero(~ok).tolist():
            rest.append(rns[j])
            checked.pop(rns[j], None)
        rest.sort()
    return table, checked, rest
