"""Validate, normalise and stage executions for the writer: the hot path of every save.

A run is checked (shape by pydantic, meaning here: the path's flow id is the truth, access),
stamped with an id and a microsecond UTC `created_at`, its payloads serialised once, its node
facts read out, and handed to the writer as column lists. The writer turns everything waiting
into one Arrow batch per table and one transaction (group commit); the caller is answered after
the commit. Batch ingest checks every item, stores the good ones in one append and reports per
item what was stored and what was refused, and why.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, cast

import duckdb
import pyarrow as pa
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from analytics.access.permissions import FLOW_NOT_FOUND, Grant, Viewer, require_flow_access
from analytics.core.clock import UtcTime, epoch_micros, naive_utc, utc_now
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, InvalidInput, NotFound
from analytics.core.flow_version import flow_version
from analytics.core.jsonio import stored_text
from analytics.core.saturating import capped
from analytics.core.store import Append, MissingKeys, Requires, Rows
from analytics.core.user_ids import a_user_id, no_control_characters
from analytics.history.node_facts import NodeFact, node_facts, run_cost
from analytics.history.runs import Execution

log = logging.getLogger(__name__)

NODE_STRUCT = pa.struct(
    [
        ("node_id", pa.string()),
        ("node_type", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("duration_ms", pa.int64()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("tokens_estimated", pa.bool_()),
        ("cost", pa.float64()),
        ("error", pa.string()),
    ]
)
EXECUTIONS_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: timestamp() leaves its tz unbound, the list joins to object
        ("id", pa.string()),
        ("flow_id", pa.string()),
        ("user_id", pa.string()),
        ("status", pa.string()),
        ("execution_time", pa.int64()),
        ("created_at", pa.timestamp("us")),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
        ("outputs_same", pa.bool_()),
        ("node_results", pa.string()),
        ("errors", pa.string()),
        ("meta", pa.string()),
        ("node_count", pa.int32()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("tokens_estimated", pa.bool_()),
        ("cost", pa.float64()),
        ("flow_version", pa.string()),
        ("replay_of", pa.string()),
        ("nodes", pa.list_(NODE_STRUCT)),
    ]
)
MAX_EXECUTION_TIME = 2**53  # JavaScript's largest safe integer: the client reads it as a number


def _no_bool(value: Any) -> Any:
    """A JSON number only: pydantic's lax mode read `true` as 1 and `"1_000"` or `" 15 "` as
    numbers, stored though the contract and the schema say integer."""
    if isinstance(value, bool):
        raise ValueError("must be an integer number of milliseconds, not a boolean")
    if isinstance(value, str | bytes):
        raise ValueError("must be an integer number of milliseconds, not a string")
    return value


Milliseconds = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_EXECUTION_TIME)]
Payload = dict[str, Any] | None


class ExecutionCreate(BaseModel):
    """The contract's execution form; unknown keys are ignored, as the peer does."""

    model_config = ConfigDict(extra="ignore")

    flow_id: str = Field(min_length=1, max_length=255)
    status: Literal["success", "error", "aborted"]
    inputs: Payload = None
    outputs: Payload = None
    node_results: Payload = None
    errors: Payload = None
    execution_time: Milliseconds
    meta: Payload = None
    replay_of: uuid.UUID | None = Field(
        default=None, description="the execution this run replays (same flow); links the two for compare"
    )


class ExecutionImport(ExecutionCreate):
    """A backfilled run: may carry its own id, time, (for admins) the user who ran it, and the
    version of the flow that ran (else today's version is stamped on history it never ran)."""

    id: uuid.UUID | None = None
    created_at: UtcTime | None = Field(
        default=None,
        description="epoch seconds (a number, never milliseconds) or ISO 8601 (a string; UTC when no"
        " offset is given)",
    )
    user_id: Annotated[str, AfterValidator(a_user_id)] | None = Field(
        default=None, min_length=1, max_length=255
    )
    flow_version: Annotated[str, AfterValidator(no_control_characters)] | None = Field(
        default=None, min_length=1, max_length=255, description="the version that ran (not with `flow`)"
    )
    # a plain object, not a nested model: the batch route's OpenAPI inlines this schema, where
    # a nested model's `$defs` reference would not resolve
    flow: dict[str, Any] | None = Field(
        default=None, description="the definition that ran, {nodes, edges}: its version is stored"
    )


@dataclass(slots=True)
class Staged:
    execution: Execution
    row: tuple[Any, ...]
    id_supplied: bool = False
    # the definition a backfilled run carried (`flow`): (flow_id, version, nodes, edges) as JSON
    # text, kept in flow_versions so the run can be replayed on the graph that ran it
    definition: tuple[str, str, str, str] | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: Literal["stored", "refused"]
    id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A batch's verdict: how many were stored and refused, and each item's (in order)."""

    stored: int
    refused: int
    items: list[ItemResult]

    @classmethod
    def of(cls, items: list[ItemResult]) -> BatchResult:
        stored = sum(1 for r in items if r.status == "stored")
        return cls(stored, len(items) - stored, items)


def new_execution_id(created_at: datetime) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of the run's millisecond time, then 74 random bits.

    Ids that grow with time keep the primary-key index's inserts local and make the id a
    natural tie-break for runs in the same microsecond.
    """
    ms = max(0, epoch_micros(created_at) // 1000) & (2**48 - 1)
    rand = int.from_bytes(os.urandom(10))  # 12 bits of it beside the version, 62 after the variant
    value = ms << 80 | 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def stage(
    ctx: Context,
    viewer: Viewer,
    form: ExecutionCreate,
    *,
    flow_id: str | None = None,
    arrived_at: datetime | None = None,
) -> Staged:
    """Check meaning and build the stored row. `flow_id` is the path's, when there is one;
    `arrived_at` the time a run without `created_at` gets (default: now)."""
    # the contract's order: the path's flow exists, may be read, then the body names it too
    grant = require_flow_access(ctx.directory, viewer, form.flow_id if flow_id is None else flow_id)
    if flow_id is not None and form.flow_id != flow_id:
        raise InvalidInput(
            f"body flow_id {form.flow_id!r} does not match the flow in the path {flow_id!r}",
            field="flow_id",
        )
    user_id = viewer.id
    supplied_id: str | None = None
    created_at = arrived_at if arrived_at is not None else utc_now()
    version = grant.flow.version or None
    if isinstance(form, ExecutionImport):
        version = version_of(form, version)
        supplied_id = str(form.id) if form.id is not None else None
        if form.created_at is not None:
            created_at = checked_time(form.created_at)
        if form.user_id is not None and form.user_id != viewer.id:
            if not viewer.is_admin:
                raise InvalidInput("only admins may import runs of another user", field="user_id")
            user_id = form.user_id
    if form.replay_of is not None:
        _check_replay_of(ctx, str(form.replay_of), grant)
    staged = _build(
        ctx, grant, form, supplied_id or new_execution_id(created_at), user_id, created_at, version
    )
    staged.id_supplied = supplied_id is not None
    if isinstance(form, ExecutionImport) and form.flow is not None and version is not None:
        nodes, edges = (stored_text(form.flow[part], f"flow.{part}") or "[]" for part in ("nodes", "edges"))
        staged.definition = (form.flow_id, version, nodes, edges)
    return staged


def version_of(form: ExecutionImport, current: str | None) -> str | None:
    """The run's own flow_version, or its definition's; else the flow's current version."""
    if form.flow_version is not None and form.flow is not None:
        raise InvalidInput("give flow_version or flow, not both", field="flow_version")
    if form.flow_version is not None:
        return form.flow_version
    if form.flow is not None:
        for part in ("nodes", "edges"):
            if not isinstance(form.flow.get(part), list):
                raise InvalidInput(
                    f"flow.{part} must be a list (the definition that ran)", field=f"flow.{part}"
                )
        try:
            return flow_version(form.flow["nodes"], form.flow["edges"])
        except InvalidInput as exc:
            raise InvalidInput(f"flow: {exc.detail}", field="flow") from exc
    return current


def checked_time(value: datetime) -> datetime:
    """A run's own created_at as stored (naive UTC); refused more than a day ahead."""
    value = naive_utc(value)
    if value > utc_now() + timedelta(days=1):
        raise InvalidInput("created_at is more than a day in the future", field="created_at")
    return value


def _check_replay_of(ctx: Context, original: str, grant: Grant) -> None:
    """The original must be a run of this flow that the caller may see."""
    rows = ctx.store.read(
        lambda c: c.execute("SELECT flow_id, user_id FROM executions WHERE id = ?", [original]).fetchall()
    )
    visible = bool(rows) and rows[0][0] == grant.flow.id and grant.only_user in (None, rows[0][1])
    if not visible:
        raise InvalidInput(f"replay_of {original} is not an execution of this flow", field="replay_of")


def _build(
    ctx: Context,
    grant: Grant,
    form: ExecutionCreate,
    exec_id: str,
    user_id: str,
    created_at: datetime,
    version: str | None,
) -> Staged:
    # serialise first: it refuses what is nested too deeply, before anything walks the payload
    node_results_json = stored_text(form.node_results, "node_results")
    outputs_json = stored_text(form.outputs, "outputs")
    inputs_json = stored_text(form.inputs, "inputs")
    errors_json = stored_text(form.errors, "errors")
    meta = form.meta if form.meta is not None else {}
    meta_json = stored_text(meta, "meta")
    outputs_same = outputs_json is not None and outputs_json == node_results_json
    prompt = (form.inputs or {}).get("prompt")
    facts = node_facts(form.node_results, form.errors, prompt=prompt if isinstance(prompt, str) else None)
    tokens_in = _sum(f.tokens_in for f in facts)
    tokens_out = _sum(f.tokens_out for f in facts)
    day = created_at.date()
    costs = [ctx.prices.cost(f.model, day, f.tokens_in, f.tokens_out) for f in facts]
    cost = run_cost([f.model for f in facts], costs)
    estimated = any(f.tokens_estimated for f in facts)
    replay_of = str(form.replay_of) if form.replay_of is not None else None
    row = (
        exec_id,
        grant.flow.id,
        user_id,
        form.status,
        form.execution_time,
        created_at,
        inputs_json,
        None if outputs_same else outputs_json,
        outputs_same,
        node_results_json,
        errors_json,
        meta_json,
        len(facts),
        tokens_in,
        tokens_out,
        estimated,
        cost,
        version,
        replay_of,
        node_rows(facts, costs),
    )
    node_names = NODE_STRUCT.names
    execution = Execution(
        id=exec_id,
        flow_id=grant.flow.id,
        user_id=user_id,
        status=form.status,
        inputs=form.inputs,
        outputs=form.outputs,
        node_results=form.node_results,
        errors=form.errors,
        execution_time=form.execution_time,
        created_at=created_at,
        meta=meta,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_estimated=estimated,
        cost=cost,
        flow_version=version,
        replay_of=replay_of,
        nodes=[dict(zip(node_names, t, strict=True)) for t in row[-1]],
    )
    return Staged(execution, row)


def node_rows(facts: list[NodeFact], costs: list[float | None]) -> list[tuple[Any, ...]]:
    """A run's node facts as the `nodes` column's structs (NODE_STRUCT's field order)."""
    return [
        (
            f.node_id,
            f.node_type,
            f.model,
            f.status,
            f.duration_ms,
            f.tokens_in,
            f.tokens_out,
            f.tokens_estimated,
            c,
            f.error,
        )
        for f, c in zip(facts, costs, strict=True)
    ]


def _sum(values: Iterable[int | None]) -> int | None:
    """Sum of what was reported, clamped so a run of absurd counts cannot overflow int64."""
    present = [v for v in values if v is not None]
    return capped(sum(present)) if present else None


def _columns(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> Rows:
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
    return Rows(schema, {name: list(col) for name, col in zip(schema.names, cols, strict=True)})


def _of_flows(flow_ids: Iterable[str]) -> Requires:
    """A run goes in only while its flow is there: one staged before a concurrent delete of the
    flow is refused (MissingKeys) instead of outliving it."""
    return Requires("flows", "id", frozenset(flow_ids))


def submit(ctx: Context, staged: list[Staged]) -> Future[Any]:
    """Queue staged runs for the writer; the future resolves after the commit (MissingKeys:
    their flow was deleted meanwhile, nothing stored)."""
    rows = [s.row for s in staged]
    append = Append({"executions": _columns(EXECUTIONS_SCHEMA, rows)}, _of_flows(r[1] for r in rows))
    return ctx.store.submit(append, after_commit=_counted(ctx, *([r[i] for r in rows] for i in range(1, 6))))


def submit_table(ctx: Context, table: pa.Table) -> Future[Any]:
    """Queue runs already in columns (EXECUTIONS_SCHEMA), as the batch's bulk path builds them."""
    names = ("flow_id", "user_id", "status", "execution_time", "created_at")
    flows, users, statuses, times, created = (table.column(n).to_pylist() for n in names)
    append = Append({"executions": table}, _of_flows(cast("list[str]", flows)))
    return ctx.store.submit(append, after_commit=_counted(ctx, flows, users, statuses, times, created))


def flow_gone(exc: BaseException) -> BaseException:
    """A commit's error as the caller should see it: a flow deleted meanwhile is a 404."""
    return NotFound(FLOW_NOT_FOUND) if isinstance(exc, MissingKeys) else exc


def rows_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Staged rows (`Staged.row`) as one Arrow table, to go in beside a bulk-built one."""
    return _columns(EXECUTIONS_SCHEMA, rows).to_arrow()


def _counted(
    ctx: Context,
    flows: list[Any],
    users: list[Any],
    statuses: list[Any],
    times: list[Any],
    created: list[Any],
) -> Callable[[object], None]:
    """After the commit: the counters, the rollups' dirty days and the ingest listeners."""

    def count(_: object) -> None:
        ctx.counters.add(flows, users, statuses, times, created)
        ctx.rollup_state.note_ingest(ctx.store, list(zip(flows, created, strict=True)))
        ctx.notify_ingest(set(flows))

    return count


def save(
    ctx: Context, viewer: Viewer, form: ExecutionCreate, *, flow_id: str | None = None
) -> Future[Execution]:
    """The single-run POST: stage (checks, access) and queue it; resolves to the run once committed."""
    staged = stage(ctx, viewer, form, flow_id=flow_id)
    saved: Future[Execution] = Future()

    def answer(committed: Future[Any]) -> None:
        # the request gone (a client cut off, a server stopping) cancelled it: nobody to answer,
        # and setting it raised InvalidStateError, an ERROR traceback in the log
        if not saved.set_running_or_notify_cancel():
            return
        exc = committed.exception()
        if exc is None:
            saved.set_result(staged.execution)
        else:
            saved.set_exception(flow_gone(exc))

    submit(ctx, [staged]).add_done_callback(answer)
    return saved


def parse_form(data: Any, model: type[ExecutionCreate] = ExecutionCreate) -> ExecutionCreate:
    """Shape check; raises pydantic's ValidationError (the API renders it as FastAPI's 422)."""
    if isinstance(data, model):
        return data
    return model.model_validate(data)


def save_execution(ctx: Context, viewer: Viewer, data: Any, *, flow_id: str) -> Execution:
    """Store one run of `flow_id` and return it once committed (the library's E1)."""
    staged = stage(ctx, viewer, parse_form(data), flow_id=flow_id)
    error = submit(ctx, [staged]).exception()
    if error is not None:
        raise flow_gone(error)
    return staged.execution


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class FlowMisses:
    """Open WebUI mode: a batch's flow the mirror lacks may have been made in Open WebUI since
    its last read (a backfill right after the flow was made). Before its runs are refused "Flow
    not found", Open WebUI is read once for the batch (as a single save reads it once:
    api/routes/executions.py); standalone, nothing is read."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._asked = False

    def grant(self, viewer: Viewer, flow_id: str) -> Grant:
        """`require_flow_access`, with that one read first when the flow is not known."""
        try:
            return require_flow_access(self._ctx.directory, viewer, flow_id)
        except NotFound:
            if self._asked or self._ctx.directory.refresher is None:
                raise
            self._asked = True
            self._ctx.directory.refresh_for_miss(flow_id)
            return require_flow_access(self._ctx.directory, viewer, flow_id)


def save_executions(
    ctx: Context, viewer: Viewer, items: Iterable[Any], *, flow_id: str | None = None
) -> list[ItemResult]:
    """Batch ingest: every good item is stored in one append; each bad one says why."""
    results: dict[int, ItemResult] = {}
    staged: list[tuple[int, Staged]] = []
    seen: set[str] = set()
    misses = FlowMisses(ctx)
    for index, item in enumerate(items):
        if isinstance(item, FlowHistoryError):  # a line the caller could not even parse
            results[index] = ItemResult(index, "refused", detail=item.detail)
            continue
        try:
            form = parse_form(item, ExecutionImport)
            if flow_id is None:
                misses.grant(viewer, form.flow_id)  # stage checks it again: from the mirror then
            s = stage(ctx, viewer, form, flow_id=flow_id)
        except ValidationError as exc:
            results[index] = ItemResult(index, "refused", detail=describe(exc))
            continue
        except FlowHistoryError as exc:
            results[index] = ItemResult(index, "refused", detail=exc.detail)
            continue
        if s.execution.id in seen:
            results[index] = ItemResult(
                index, "refused", detail=f"id {s.execution.id} appears twice in this batch"
            )
            continue
        seen.add(s.execution.id)
        staged.append((index, s))
    existing = existing_ids(ctx, [s.execution.id for _, s in staged if s.id_supplied])
    fresh = []
    for index, s in staged:
        if s.execution.id in existing:
            results[index] = ItemResult(
                index, "refused", detail=f"an execution with id {s.execution.id} already exists"
            )
        else:
            fresh.append((index, s))
    if fresh:
        ids = [s.execution.id for _, s in fresh]
        try:
            remember_definitions(ctx, [s for _, s in fresh])
            flows = [s.execution.flow_id for _, s in fresh]
            taken, gone, error = commit_new(
                ctx, ids, flows, lambda keep: submit(ctx, [fresh[i][1] for i in keep])
            )
        except Exception as exc:
            taken, gone, error = set(), set(), exc
        why = None if error is None else failure_verdict(error)
        for index, s in fresh:
            if s.execution.id in taken:
                results[index] = ItemResult(
                    index, "refused", detail=f"an execution with id {s.execution.id} already exists"
                )
            elif s.execution.flow_id in gone:
                results[index] = ItemResult(index, "refused", detail=FLOW_NOT_FOUND)
            elif why is not None:  # nothing of it was stored
                results[index] = ItemResult(index, "refused", detail=why)
            else:
                results[index] = ItemResult(index, "stored", id=s.execution.id)
    return [results[i] for i in sorted(results)]


def remember_definitions(ctx: Context, staged: list[Staged]) -> None:
    """The definitions backfilled runs carried, each once, dated by its earliest run (when the
    flow had it at the latest); one already known is kept as it is, and none of a flow deleted
    since its runs were checked (those runs are refused at their commit)."""
    first: dict[tuple[str, str], tuple[tuple[str, str, str, str], datetime]] = {}
    for s in staged:
        if s.definition is not None:
            key, at = s.definition[:2], s.execution.created_at
            if key not in first or at < first[key][1]:
                first[key] = (s.definition, at)
    if first:
        rows = [[*d, at, d[0]] for d, at in first.values()]
        ctx.store.write(
            lambda c: c.executemany(
                "INSERT INTO flow_versions SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM flows WHERE id = ?)"
                " ON CONFLICT DO NOTHING",
                rows,
            )
        )


def ingest_batch(ctx: Context, viewer: Viewer, items: list[Any]) -> BatchResult:
    """The batch endpoint: at most `batch_max_items` items (else nothing is stored), each judged."""
    check_batch_size(ctx, len(items))
    return BatchResult.of(save_executions(ctx, viewer, items))


def check_batch_size(ctx: Context, items: int) -> None:
    """More than `batch_max_items` items: nothing of the batch is stored."""
    cap = ctx.settings.batch_max_items
    if items > cap:
        raise InvalidInput(f"a batch holds at most {cap} items; this one has {items}", field="body")


def commit_new(
    ctx: Context,
    ids: list[str],
    flows: list[str],
    submit_some: Callable[[list[int]], Future[Any]],
    first: Future[Any] | None = None,
) -> tuple[set[str], set[str], BaseException | None]:
    """Commit the runs `ids` of `flows` (`submit_some` queues those at the positions given), less
    any that a concurrent batch or import stored since they were checked (the insert is then
    refused on the id's key as a whole, so the ids are looked up again) and those of a flow
    deleted meanwhile (MissingKeys); the others are submitted once more. Answers the ids found
    stored meanwhile, the flows found gone, and the error that kept the rest out (None: stored)."""
    taken: set[str] = set()
    gone: set[str] = set()
    keep = list(range(len(ids)))
    future = first if first is not None else submit_some(keep)
    while True:
        error = future.exception()
        if isinstance(error, MissingKeys):
            gone |= error.keys
            keep = [i for i in keep if flows[i] not in gone]
        elif isinstance(error, duckdb.ConstraintException):
            now = existing_ids(ctx, [ids[i] for i in keep])
            if not now:  # another constraint: not a race on ids
                return taken, gone, error
            taken |= now
            keep = [i for i in keep if ids[i] not in now]
        else:
            return taken, gone, error
        if not keep:
            return taken, gone, None
        future = submit_some(keep)


def failure_verdict(error: BaseException, step: str = "commit") -> str:
    """A verdict for items a failed step of a batch took: our own errors say why, never DuckDB's
    text or paths (those are logged)."""
    if isinstance(error, FlowHistoryError):
        return error.detail
    log.error("a batch's %s failed", step, exc_info=error)
    return "not stored (an internal error, logged), retry"


def existing_ids(ctx: Context, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR FROM executions WHERE id IN (SELECT unnest(?::UUID[]))", [ids]
        ).fetchall()
    )
    return {r[0] for r in rows}
