"""Where export files live and what columns they hold: the contract other engines read.

Root (local folder or S3 prefix):

    executions/date=YYYY-MM-DD/<uuid>.parquet        every run, zstd
    execution_nodes/date=YYYY-MM-DD/<uuid>.parquet   one row per node of a run
    flows/flows.parquet                              the flows (no access control), rewritten each cycle
    _schema.json                                     EXPORT_SCHEMA_VERSION and the columns
    _manifest.json                                   the files of the last published snapshot
    _staging/                                        (local only) files and folders being prepared

Partitions are real folders (an older layout made them symlinks into `_versions/`; targets.py
migrates it). Nothing but published `.parquet` files is ever inside a table folder.

`date` is the UTC date of `created_at`, a hive partition column: it is in the path, not in
the files. The column lists here are the single source of the export's shape; bumping
EXPORT_SCHEMA_VERSION is how a reader learns it changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

EXPORT_SCHEMA_VERSION = 1

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

PARTITIONED = (EXECUTIONS, EXECUTION_NODES)
TABLES = (EXECUTIONS, EXECUTION_NODES, FLOWS)
FLOWS_FILE = "flows/flows.parquet"

_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


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
                "path": f"{t.name}/date=YYYY-MM-DD/<uuid>.parquet" if t.partitioned else FLOWS_FILE,
                "columns": [{"name": c.name, "type": c.type, "doc": c.doc} for c in t.columns],
            }
            for t in TABLES
        },
    }
