"""Where export files live and what columns they hold: the contract other engines read.

Root (local folder or S3 prefix):

    executions/date=YYYY-MM-DD/<uuid>.parquet        every run, zstd
    execution_nodes/date=YYYY-MM-DD/<uuid>.parquet   one row per node of a run
    flows/flows.parquet                              the flows (no access control), rewritten each cycle
    annotations/annotations.parquet                  notes, tags, ratings of runs, rewritten each cycle
    _schema.json                                     EXPORT_SCHEMA_VERSION and the columns
    _manifest.json                                   the files of the last published snapshot
    _staging/                                        (local only) files and folders being prepared

Partitions are real folders (an older layout made them symlinks into `_versions/`; targets.py
migrates it). Nothing but published `.parquet` files is ever inside a table folder.

`date` is the UTC date of `created_at`, a hive partition column: it is in the path, not in
the files. The column lists here are the single source of the export's shape; bumping
EXPORT_SCHEMA_VERSION is how a reader learns it changed. Version 2 added `annotations` (the
other tables are as in version 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

EXPORT_SCHEMA_VERSION = 2

STAGING = "_staging"
VERSIONS = "_versions"  # the old layout's version folders, removed by the migration
HIDDEN = ("_", ".")  # names no writer publishes and readers skip
SCHEMA_FILE = "_schema.json"
MANIFEST_FILE = "_manifest.json"

NODE_STRUCT = (
    "STRUCT(node_id VARCHAR, node_type VARCHAR, model VARCHAR, status VARCHAR, duration_ms BIGINT,"
    " tokens_in BIGINT, tokens_out BIGINT, tokens_estimated BOOLEAN, cost DOUBLE, error VARCHAR)[]"
)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # DuckDB type as a reader sees it in the Parquet file
    sql: str  # expression over the store's table or view
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    source: str  # the store table or view read
    columns: tuple[Column, ...]
    partitioned: bool
    since: int = 1  # the export schema version that added the table

    @property
    def path(self) -> str:
        """Where its files are, relative to the root (one file for a table not partitioned)."""
        return (
            f"{self.name}/date=YYYY-MM-DD/<uuid>.parquet"
            if self.partitioned
            else f"{self.name}/{self.name}.parquet"
        )

    def select_sql(self, where: str = "TRUE", *, with_date: bool = True) -> str:
        """The export's rows from the store; partitioned tables get the `date` column last
        (for a PARTITION_BY write; a file for one partition is written without it)."""
        cols = [f"{c.sql} AS {c.name}" for c in self.columns]
        if self.partitioned and with_date:
            cols.append("CAST(created_at AS DATE) AS date")
        return f"SELECT {', '.join(cols)} FROM {self.source} WHERE {where}"


TS = "TIMESTAMP WITH TIME ZONE"


def _utc(col: str) -> str:
    # the store keeps naive UTC timestamps; timezone('UTC', ts) marks them as UTC instants
    return f"timezone('UTC', {col})"


EXECUTIONS = Table(
    "executions",
    "executions",
    (
        Column("id", "VARCHAR", "CAST(id AS VARCHAR)", "UUID of the run"),
        Column("flow_id", "VARCHAR", "flow_id"),
        Column("user_id", "VARCHAR", "user_id"),
        Column("status", "VARCHAR", "status", "success, error or aborted"),
        Column("execution_time", "BIGINT", "execution_time", "milliseconds"),
        Column("created_at", TS, _utc("created_at"), "UTC, microseconds"),
        Column("inputs", "VARCHAR", "CAST(inputs AS VARCHAR)", "JSON text"),
        Column(
            "outputs",
            "VARCHAR",
            "CAST(CASE WHEN outputs_same THEN node_results ELSE outputs END AS VARCHAR)",
            "JSON text; always the run's outputs (the store's shared-copy trick is undone)",
        ),
        Column(
            "outputs_same",
            "BOOLEAN",
            "outputs_same",
            "informational: outputs is an exact copy of node_results",
        ),
        Column("node_results", "VARCHAR", "CAST(node_results AS VARCHAR)", "JSON text"),
        Column("errors", "VARCHAR", "CAST(errors AS VARCHAR)", "JSON text"),
        Column("meta", "VARCHAR", "CAST(meta AS VARCHAR)", "JSON text"),
        Column("node_count", "INTEGER", "node_count"),
        Column("tokens_in", "BIGINT", "tokens_in"),
        Column("tokens_out", "BIGINT", "tokens_out"),
        Column("tokens_estimated", "BOOLEAN", "tokens_estimated"),
        Column("cost", "DOUBLE", "cost", "USD"),
        Column("flow_version", "VARCHAR", "flow_version"),
        Column("replay_of", "VARCHAR", "CAST(replay_of AS VARCHAR)", "UUID of the original run"),
        Column("nodes", NODE_STRUCT, "nodes", "per-node facts, as in the store"),
    ),
    partitioned=True,
)

EXECUTION_NODES = Table(
    "execution_nodes",
    "execution_nodes",
    (
        Column("execution_id", "VARCHAR", "CAST(execution_id AS VARCHAR)"),
        Column("flow_id", "VARCHAR", "flow_id"),
        Column("user_id", "VARCHAR", "user_id"),
        Column("created_at", TS, _utc("created_at"), "the run's, UTC"),
        Column("node_id", "VARCHAR", "node_id"),
        Column("node_type", "VARCHAR", "node_type"),
        Column("model", "VARCHAR", "model"),
        Column("status", "VARCHAR", "status"),
        Column("duration_ms", "BIGINT", "duration_ms"),
        Column("tokens_in", "BIGINT", "tokens_in"),
        Column("tokens_out", "BIGINT", "tokens_out"),
        Column("tokens_estimated", "BOOLEAN", "tokens_estimated"),
        Column("cost", "DOUBLE", "cost", "USD"),
        Column("error", "VARCHAR", "error"),
    ),
    partitioned=True,
)

FLOWS = Table(
    "flows",
    "flows",
    (
        Column("id", "VARCHAR", "id"),
        Column("user_id", "VARCHAR", "user_id", "owner"),
        Column("name", "VARCHAR", "name"),
        Column("version", "VARCHAR", "version", "hash of the current nodes and edges"),
        Column("updated_at", TS, _utc("updated_at"), "UTC"),
    ),
    partitioned=False,
)

# the store keeps at most one annotation per run; every delete of runs deletes theirs. Only
# annotations of runs the store has (same id and flow, as the API shows them) are exported.
ANNOTATIONS = Table(
    "annotations",
    "execution_annotations AS a",
    (
        Column("execution_id", "VARCHAR", "CAST(execution_id AS VARCHAR)", "UUID of the run"),
        Column("flow_id", "VARCHAR", "flow_id", "the run's flow"),
        Column("note", "VARCHAR", "note", "NULL: no note (a blank note is stored as none)"),
        Column("tags", "VARCHAR[]", "tags", "distinct, in the order given; [] for none"),
        Column("rating", "SMALLINT", "rating", "1 up, -1 down, NULL none"),
        Column("updated_by", "VARCHAR", "updated_by", "user id of whoever set it last"),
        Column("updated_at", TS, _utc("updated_at"), "UTC"),
    ),
    partitioned=False,
    since=2,
)
ANNOTATED_RUN_EXISTS = (
    "EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id AND e.flow_id = a.flow_id)"
)

PARTITIONED = (EXECUTIONS, EXECUTION_NODES)
TABLES = (EXECUTIONS, EXECUTION_NODES, FLOWS, ANNOTATIONS)
FLOWS_FILE = FLOWS.path
ANNOTATIONS_FILE = ANNOTATIONS.path

_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})\Z")


def partition_name(day: date) -> str:
    return f"date={day.isoformat()}"


def parse_partition(name: str) -> date | None:
    """The day of a `date=YYYY-MM-DD` entry, None for anything else."""
    m = _PARTITION.match(name)
    return date.fromisoformat(m.group(1)) if m else None


def schema_document() -> dict[str, object]:
    """What `_schema.json` holds: the version, the layout and every column with its type."""
    return {
        "export_schema_version": EXPORT_SCHEMA_VERSION,
        "partitioning": {"column": "date", "type": "DATE", "of": "UTC date of created_at", "style": "hive"},
        "compression": "zstd",
        "tables": {
            t.name: {
                "path": t.path,
                "since_version": t.since,
                "columns": [{"name": c.name, "type": c.type, "doc": c.doc} for c in t.columns],
            }
            for t in TABLES
        },
    }


def absent_table_error(root: Path, table: Table) -> str | None:
    """Why a local export lacks `table`'s file, for a table added after version 1 that every
    cycle writes, even empty (`annotations`); None when an empty table is the right answer (the
    file is there, the table is older, or nothing is published yet: a first cycle running).

    A reader must not answer "none" from an export written before the table existed: the store
    may well have rows. It raises this instead."""
    if table.since <= 1 or table.partitioned or (root / table.path).exists():
        return None
    if not (root / SCHEMA_FILE).exists() and not any((root / EXECUTIONS.name).glob("date=*/*.parquet")):
        return None
    return (
        f"the export at {root} has no {table.path}, so it cannot answer about {table.name}: it was "
        f"written before {table.name} were exported (since export schema version {table.since}), or its "
        "cycle has not finished. Run an export cycle (`flowhistory export run`, or "
        "POST /api/v1/exports/run while the server runs), then read it again"
    )
