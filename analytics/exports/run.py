"""One export cycle: bring the target in line with the store, writing only what changed.

Runs can arrive with an old `created_at` (imports), be deleted (users, retention, flow
deletes), re-priced or trimmed, so a created_at watermark is not enough. Each UTC day of the
store has a fingerprint: its run count and the XOR of a hash of each run's id, cost, per-node
facts and whether its payloads are there (order-free, cheap: one grouped scan). `export_days`
keeps the fingerprint each day had when it was exported. Per day:

- in the store, not in the target: written (new partition);
- in the target, not in the store: dropped (every run of that day was deleted);
- fingerprint unchanged: skipped;
- changed: the ids in the exported files are read (one column) and the store's runs with those
  ids are fingerprinted again. The same as recorded means the day only gained runs: the new
  ones are appended as a new file. Anything else (a run deleted or re-priced) rewrites the day.

Each day is decided and copied in one read transaction on a read cursor (a consistent
snapshot of that day; the writer never waits), so the fingerprint recorded is that of exactly
the runs copied. Days are copied by DuckDB COPY into staging (bounded memory, nothing through
Python) and published, executions first, on a few threads. The records of the days a cycle may
publish are dropped before it publishes any, and written again as each finishes: a cycle that
fails part-way, or is killed, leaves the days it did not record without a record, and the next
cycle rewrites them whole.

The records are only as true as the store they live in. Each cycle names itself (`generation`)
first in the store, then in the target's manifest, before it publishes anything; a cycle that
finds the target's generation is not the last one the store named (a store restored from a
backup, an export folder replaced by an older copy) trusts none of the records and rewrites every
day. A restored store's records matched its runs while the files held a later state, so every
day was skipped for ever. Named before publishing, a cycle that fails or is killed part-way
leaves store and target agreeing on it, with records that match what it published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analytics.core.clock import naive_utc, utc_now, utc_now_aware
from analytics.core.context import Context
from analytics.core.errors import FolderFull
from analytics.core.jsonio import dumps_text
from analytics.core.store import Connection, in_snapshot, is_disk_full
from analytics.exports.layout import (
    ANNOTATED_RUN_EXISTS,
    ANNOTATIONS,
    ANNOTATIONS_FILE,
    EXECUTION_NODES,
    EXECUTIONS,
    EXPORT_SCHEMA_VERSION,
    FLOWS,
    FLOWS_FILE,
    MANIFEST_FILE,
    PARTITIONED,
    SCHEMA_FILE,
    Table,
    schema_document,
)
from analytics.exports.publish import (
    ExportBusy,
    clear_staging,
    copy_file,
    copy_whole_file,
    staging,
    target_lock,
)
from analytics.exports.targets import FileEntry, Target, open_target

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

KEEP_CYCLES = 200
ID_COLUMN = {EXECUTIONS.name: "id", EXECUTION_NODES.name: "execution_id"}


@dataclass(frozen=True, slots=True)
class DayPrint:
    runs: int
    node_rows: int
    fingerprint: int


def _days_filter(days: Iterable[date]) -> str:
    """A predicate on `created_at` for these UTC days; the range lets DuckDB skip row groups."""
    days = sorted(days)
    listed = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    return (
        f"created_at >= TIMESTAMP '{days[0].isoformat()}' AND "
        f"created_at < TIMESTAMP '{(days[-1] + timedelta(days=1)).isoformat()}' AND "
        f"CAST(created_at AS DATE) IN ({listed})"
    )


# what can change in a stored run: its cost and per-node facts (re-pricing), its payloads
# (retention trims them to NULL, a restore brings them back)
# Every column a run can come back with changed: a re-price (cost), a trim or a restore's refill
# (whether it has payloads: `inputs IS NULL`, and the pair, `outputs` alone once missed), and
# a delete and re-import of the same id on the same day, which can change anything (its status,
# time, user, flow, meta, errors and node facts were once missed: the export kept the old run).
# Payload text is left out (reading it every cycle would read most of the store): a re-import
# that changes only its inputs, outputs or node_results text is not seen.
_ROW_HASH = (
    "hash(id, cost, nodes, inputs IS NULL, node_results IS NULL AND outputs IS NULL, status,"
    " execution_time, created_at, user_id, flow_id, flow_version, replay_of, meta, errors)"
)


def _fingerprints(conn: Connection, where: str = "TRUE") -> dict[date, DayPrint]:
    rows = conn.execute(
        "SELECT CAST(created_at AS DATE), count(*), coalesce(sum(len(nodes)), 0),"
        f" coalesce(bit_xor({_ROW_HASH}), 0) FROM executions WHERE {where} GROUP BY 1"
    ).fetchall()
    return {r[0]: DayPrint(int(r[1]), int(r[2]), int(r[3])) for r in rows}


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def _live(ctx: Context, conn: Connection) -> tuple[str, str]:
    """Predicates on runs (`flow_id`) and on flows (`id`) leaving out the flows gone from Open
    WebUI: their runs count as deleted from the moment they are gone (as in search), until the
    orphan job frees them. The gone ids are few (what the job has not freed yet), so they are
    spelled out; in standalone mode nothing is left out."""
    if not ctx.directory.external:
        return "TRUE", "TRUE"
    stored = conn.execute("SELECT id FROM flows UNION SELECT DISTINCT flow_id FROM executions").fetchall()
    gone = {fid for (fid,) in stored if ctx.directory.flow(fid) is None}
    if not gone:
        return "TRUE", "TRUE"
    listed = _quoted(gone)
    return f"flow_id NOT IN ({listed})", f"id NOT IN ({listed})"


def _recorded(conn: Connection, target: str) -> dict[date, DayPrint]:
    rows = conn.execute(
        "SELECT day, runs, node_rows, fingerprint FROM export_days WHERE target = ?", [target]
    ).fetchall()
    return {r[0]: DayPrint(int(r[1]), int(r[2]), int(r[3])) for r in rows}


def exported_ids(target: Target, files: list[FileEntry]) -> pa.Table:
    """The `id` column of exported execution files (one narrow column, read from the target)."""
    parts = []
    for f in files:
        with target.fs.open_input_file(f"{target.root}/{f.path}") as handle:
            # nullable: DuckDB marks a column `not null` in a file from the data's statistics,
            # so files of one day may differ there (after a store compaction, say)
            parts.append(pq.read_table(handle, columns=["id"]).cast(_IDS))
    return pa.concat_tables(parts) if parts else _IDS.empty_table()


_IDS = pa.schema([pa.field("id", pa.string())])


@dataclass
class Plan:
    """What the cycle's first look found; each day is then handled in its own snapshot."""

    prints: dict[date, DayPrint]
    new: list[date] = field(default_factory=list)  # not in the export: written
    changed: list[date] = field(default_factory=list)  # appended to, or rewritten
    drop: list[date] = field(default_factory=list)  # no runs left: dropped
    # a day whose node rows' partition is gone from the export (lost outside the product): it
    # was never written again, and status still counted its rows; rewritten whole
    lost_nodes: set[date] = field(default_factory=set)


_pool_guard = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """Long-lived copy threads: each keeps one store read cursor across cycles."""
    with _pool_guard:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export-copy")
        return _pools[workers]


def _store_generation(conn: Connection, target: str) -> str | None:
    """The generation the store last named for `target` (None: none)."""
    rows = conn.execute(
        "SELECT summary->>'generation' FROM export_cycles WHERE target = ? AND kind = 'generation'"
        " ORDER BY started_at DESC LIMIT 1",
        [target],
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def target_generation(target: Target) -> str | None:
    """The generation in the target's manifest (None: no manifest, or one from before them)."""
    path = f"{target.root}/{MANIFEST_FILE}"
    if target.fs.get_file_info(path).type != pafs.FileType.File:
        return None
    try:
        with target.fs.open_input_file(path) as handle:
            found = json.loads(handle.read()).get("generation")
    except (OSError, ValueError, AttributeError):  # unreadable or not an object: nothing to trust it by
        return None
    return found if isinstance(found, str) else None


class Cycle:
    def __init__(self, ctx: Context, target: Target, progress: Progress | None) -> None:
        self.ctx = ctx
        self.target = target
        self.progress = progress
        self.generation = uuid.uuid4().hex
        self.steps_done = 0
        self.steps_total = 1
        self._lock = threading.Lock()
        # day -> fingerprint of the snapshot its published files were copied from; None: dropped
        self.finished: dict[date, DayPrint | None] = {}
        self.modes: dict[str, int] = {"written": 0, "rewritten": 0, "appended": 0, "dropped": 0}
        self.rows_written: dict[str, int] = {t.name: 0 for t in PARTITIONED}
        # runs and flows exported: all but those of flows gone from Open WebUI (set by the plan)
        self.live_runs, self.live_flows = "TRUE", "TRUE"
        self.annotations: dict[str, int] = {}  # the annotations file written: files, rows, bytes

    def step(self, label: str) -> None:
        with self._lock:
            self.steps_done += 1
            if self.progress is not None:
                self.progress(min(self.steps_done, self.steps_total), self.steps_total, label)

    def run(self, folder: Path) -> dict[str, Any]:
        exported = {t.name: self.target.partitions(t.name) for t in PARTITIONED}
        recorded = self.ctx.store.read(lambda c: _recorded(c, self.target.url))
        published = target_generation(self.target)
        if published is not None and published != self.ctx.store.read(
            lambda c: _store_generation(c, self.target.url)
        ):
            log.warning(
                "the export at %s was not written by this store's last cycle (a store restored from a"
                " backup, or an export folder replaced): every day is rewritten",
                self.target.url,
            )
            recorded = {}
        # named in the store, then on the target, before anything is published (module docstring)
        record_cycle(
            self.ctx, self.target.url, "generation", utc_now(), None, {"generation": self.generation}
        )
        write_manifest(self.target, self.generation, exported)  # the listing just read
        plan = self.ctx.store.read(lambda c: self._plan(c, exported, recorded))
        self.steps_total = len(plan.new) + len(plan.changed) + len(plan.drop) + 3
        # one COPY per day and table, not one PARTITION_BY over all days: DuckDB buffers every
        # open partition of a partitioned write, which at ~5 KB a run made the full export 2.4x
        # slower than a plain file (119 s against 49 s for 1M runs). A day's COPY runs on one
        # thread (a day is one storage row group), so days are copied and published in parallel.
        days = sorted(plan.new + plan.changed)
        self._forget(days + plan.drop)
        files = exported[EXECUTIONS.name]
        pool = _pool(max(1, self.ctx.settings.export_workers))
        futures = [  # no record for a day with lost nodes: it is not appended to, nor skipped
            pool.submit(
                self._day,
                folder / d.isoformat(),
                d,
                files.get(d),
                None if d in plan.lost_nodes else recorded.get(d),
            )
            for d in days
        ]
        try:
            for future in as_completed(futures):
                future.result()
        finally:
            for future in futures:  # on a failure: start no more days, let running ones end
                future.cancel()
            wait(futures)
        for day in plan.drop:
            for table in PARTITIONED:
                self.target.drop_partition(table.name, day)
            self._done(day, None, "dropped")
        self.ctx.store.read(
            lambda c: copy_whole_file(c, FLOWS.select_sql(self.live_flows), folder / FLOWS_FILE)
        )
        self.target.put_file(FLOWS_FILE, folder / FLOWS_FILE)
        self.step("flows")
        # annotations are few (people write them) and change in place without touching their
        # run, so no day's fingerprint sees them: the table is rewritten whole, like flows
        where = f"{self.live_runs} AND {ANNOTATED_RUN_EXISTS}"
        rows = self.ctx.store.read(
            lambda c: copy_whole_file(c, ANNOTATIONS.select_sql(where), folder / ANNOTATIONS_FILE)
        )
        self.annotations = {"files": 1, "rows": rows, "bytes": (folder / ANNOTATIONS_FILE).stat().st_size}
        self.target.put_file(ANNOTATIONS_FILE, folder / ANNOTATIONS_FILE)
        self.step("annotations")
        return self._finish(plan)

    def _plan(
        self,
        conn: Connection,
        exported: dict[str, dict[date, list[FileEntry]]],
        recorded: dict[date, DayPrint],
    ) -> Plan:
        self.live_runs, self.live_flows = _live(self.ctx, conn)  # one decision for the whole cycle
        plan = Plan(_fingerprints(conn, self.live_runs))
        present = set(exported[EXECUTIONS.name]) | set(exported[EXECUTION_NODES.name])
        plan.drop = sorted(present - set(plan.prints))
        for day, now in plan.prints.items():
            if day not in exported[EXECUTIONS.name]:
                plan.new.append(day)
            elif now.node_rows and day not in exported[EXECUTION_NODES.name]:
                plan.lost_nodes.add(day)
                plan.changed.append(day)
            elif recorded.get(day) != now:
                plan.changed.append(day)
        return plan

    # -- one day, in its own snapshot -----------------------------------------------------

    def _day(self, folder: Path, day: date, files: list[FileEntry] | None, recorded: DayPrint | None) -> None:
        # only a day with a record can be appended to: its exported ids are checked against it
        ids = exported_ids(self.target, files) if files and recorded is not None else None
        mode, now = self.ctx.store.read(in_snapshot(lambda c: self._copy(c, folder, day, ids, recorded)))
        if mode == "skip":
            return self._done(day, now, None)
        if mode == "drop":
            for table in PARTITIONED:
                self.target.drop_partition(table.name, day)
            return self._done(day, None, "dropped")
        for table in PARTITIONED:
            staged = sorted((folder / table.name).glob("*.parquet"))
            if mode == "append":
                if staged:
                    self.target.append_partition(table.name, day, staged)
            elif staged:
                self.target.replace_partition(table.name, day, staged)
            else:  # a day whose runs have no nodes has no node partition
                self.target.drop_partition(table.name, day)
        label = "appended" if mode == "append" else "written" if files is None else "rewritten"
        return self._done(day, now, label)

    def _copy(
        self, conn: Connection, folder: Path, day: date, ids: pa.Table | None, recorded: DayPrint | None
    ) -> tuple[str, DayPrint | None]:
        """Decide append or rewrite and copy, all in one snapshot: the fingerprint recorded is
        the fingerprint of exactly what was copied."""
        where = f"{_days_filter([day])} AND {self.live_runs}"
        now = _fingerprints(conn, where).get(day)
        if now is None:
            return "drop", None
        mode = "write"
        if ids is not None:
            conn.register("_exported", ids)
            try:
                if now == recorded:
                    return "skip", now
                kept = _fingerprints(conn, f"{where} AND id IN (SELECT CAST(id AS UUID) FROM _exported)")
                # every exported run is still there, unchanged, and none was exported twice
                if kept.get(day) == recorded and ids.num_rows == recorded.runs:  # type: ignore[union-attr]
                    mode = "append"
                for table in PARTITIONED:
                    if mode == "append":
                        only_new = f"{where} AND {ID_COLUMN[table.name]} NOT IN (SELECT CAST(id AS UUID) FROM _exported)"
                        self._copy_table(conn, table, only_new, folder)
                    elif table is EXECUTIONS or now.node_rows:
                        self._copy_table(conn, table, where, folder)
            finally:
                conn.unregister("_exported")
            return mode, now
        for table in PARTITIONED:
            if table is EXECUTIONS or now.node_rows:  # no node rows that day: no file
                self._copy_table(conn, table, where, folder)
        return mode, now

    def _copy_table(self, conn: Connection, table: Table, where: str, folder: Path) -> None:
        dest = folder / table.name / f"{uuid.uuid4()}.parquet"
        rows = copy_file(conn, table.select_sql(where, with_date=False), dest)
        if rows == 0:
            dest.unlink()
        with self._lock:
            self.rows_written[table.name] += rows

    def _done(self, day: date, now: DayPrint | None, label: str | None) -> None:
        with self._lock:
            self.finished[day] = now
            if label is not None:
                self.modes[label] += 1
        self.step(f"{label or 'unchanged'} {day}")

    def _forget(self, days: list[date]) -> None:
        """Drop the records of the days this cycle may publish, before it publishes any: killed
        between publishing a day and recording it, the day must have no record (it is rewritten
        whole next time), not its old one, which the store may come back to (deleted runs
        restored) while the files no longer hold them, and then the day was skipped for ever."""
        if days:
            self.ctx.store.write(
                lambda c: c.execute(
                    "DELETE FROM export_days WHERE target = ? AND list_contains(?::DATE[], day)",
                    [self.target.url, days],
                )
            )

    def record(self) -> None:
        """Remember the days this cycle finished (also after a failure: less to redo next time)."""
        with self._lock:
            finished = dict(self.finished)
        if not finished:
            return
        rows = [[self.target.url, d, p.runs, p.node_rows, p.fingerprint] for d, p in finished.items() if p]

        def write(c: Connection) -> None:
            c.execute(
                "DELETE FROM export_days WHERE target = ? AND list_contains(?::DATE[], day)",
                [self.target.url, list(finished)],
            )
            if rows:
                c.executemany("INSERT INTO export_days VALUES (?, ?, ?, ?, ?, now())", rows)

        self.ctx.store.write(write)

    # -- state, manifest, garbage -----------------------------------------------------------

    def _finish(self, plan: Plan) -> dict[str, Any]:
        self.record()
        tables = write_manifest(self.target, self.generation)
        self.target.collect_garbage(self.ctx.settings.export_grace_s)
        self.step("manifest")
        prints = dict(plan.prints)  # the store as exported: unchanged days, then what was done
        for day, done in self.finished.items():
            if done is None:
                prints.pop(day, None)
            else:
                prints[day] = done
        tables[EXECUTIONS.name]["rows"] = sum(p.runs for p in prints.values())
        tables[EXECUTION_NODES.name]["rows"] = sum(p.node_rows for p in prints.values())
        tables[ANNOTATIONS.name] = dict(self.annotations)
        return {
            "target": self.target.url,
            "days_written": self.modes["written"],
            "days_rewritten": self.modes["rewritten"],
            "days_appended": self.modes["appended"],
            "days_dropped": self.modes["dropped"],
            "generation": self.generation,
            "rows_written": self.rows_written,
            "tables": tables,
        }


def write_manifest(
    target: Target,
    generation: str | None = None,
    listing: dict[str, dict[date, list[FileEntry]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Write `_manifest.json` (the files of the snapshot just published) and `_schema.json`;
    answer files and bytes per table. `generation`: the cycle's (None: a compaction, which
    keeps the one there, since it changes files, not what they hold). `listing`: the target's
    partitions when the caller has just read them."""
    if listing is None:
        listing = {t.name: target.partitions(t.name) for t in PARTITIONED}
    tables: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] = {
        "export_schema_version": EXPORT_SCHEMA_VERSION,
        "published_at": utc_now_aware().isoformat(),
        "generation": generation if generation is not None else target_generation(target),
        "tables": {},
    }
    for name, parts in listing.items():
        files = [f for day in sorted(parts) for f in parts[day]]
        manifest["tables"][name] = [f.path for f in files]
        tables[name] = {
            "partitions": len(parts),
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "max_files_per_partition": max((len(v) for v in parts.values()), default=0),
        }
    manifest["tables"][FLOWS.name] = [FLOWS_FILE]
    # a compaction of an export no cycle of this version wrote yet has no annotations file
    if target.fs.get_file_info(f"{target.root}/{ANNOTATIONS_FILE}").type == pafs.FileType.File:
        manifest["tables"][ANNOTATIONS.name] = [ANNOTATIONS_FILE]
    with staging(target) as folder:
        for name, doc in ((MANIFEST_FILE, manifest), (SCHEMA_FILE, schema_document())):
            path = folder / name
            # stdlib json on purpose: a file for people and other engines, indented and ASCII-escaped
            path.write_text(json.dumps(doc, indent=2))
            target.put_file(name, path)
    return tables


def record_cycle(
    ctx: Context, target: str, kind: str, started: datetime, error: str | None, summary: dict[str, Any] | None
) -> None:
    def write(c: Connection) -> None:
        c.execute(
            "INSERT INTO export_cycles VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                target,
                kind,
                naive_utc(started),
                utc_now(),
                error is None,
                error,
                dumps_text(summary) if summary is not None else None,
            ],
        )
        c.execute(
            "DELETE FROM export_cycles WHERE target = ? AND kind = ? AND started_at < ("
            " SELECT min(started_at) FROM (SELECT started_at FROM export_cycles WHERE target = ? AND kind = ?"
            " ORDER BY started_at DESC LIMIT ?))",
            [target, kind, target, kind, KEEP_CYCLES],
        )

    ctx.store.write(write)


EXPORT_FOLDER_FULL = (
    "the export folder's disk is full (FLOWHISTORY_EXPORT_URL): the days published before it are"
    " kept and the next cycle writes the rest once there is room"
)


def _out_of_room(exc: BaseException) -> bool:
    """The error, or one it came from (a day's copy failing leaves its transaction aborted, and
    that follow-on error is what surfaces), is a disk without room."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if is_disk_full(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_error(exc: BaseException) -> str:
    """The error as the export's status and the API say it: a full disk in words, no paths."""
    if _out_of_room(exc):
        return EXPORT_FOLDER_FULL
    return f"{type(exc).__name__}: {exc}"


def run_export(ctx: Context, progress: Progress | None = None, *, wait: bool = True) -> dict[str, Any]:
    """One cycle: new runs, changed and deleted days, the flows, the manifest. Raises on a
    failing target after recording the error (the scheduler retries at its next run).
    `progress(done, total, label)` is called after each step; without `wait`, a cycle or
    compaction already running on the target raises ExportBusy instead of waiting."""
    started = utc_now()
    t0 = time.perf_counter()
    target = open_target(ctx.settings)
    cycle: Cycle | None = None
    try:
        with target_lock(target, wait=wait):
            clear_staging(target)
            target.upgrade()
            cycle = Cycle(ctx, target, progress)
            with staging(target) as folder:
                summary = cycle.run(folder)
    except ExportBusy:
        raise
    except BaseException as exc:
        if cycle is not None:
            with contextlib.suppress(Exception):  # the error being reported matters more
                cycle.record()
        record_cycle(ctx, target.url, "export", started, describe_error(exc), None)
        if isinstance(exc, Exception) and _out_of_room(exc):
            log.error("the export folder %s has no room: %s", target.url, exc)
            raise FolderFull(EXPORT_FOLDER_FULL) from None
        raise
    summary["duration_s"] = round(time.perf_counter() - t0, 3)
    record_cycle(ctx, target.url, "export", started, None, summary)
    return summary
