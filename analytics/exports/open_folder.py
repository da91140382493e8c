"""A Parquet export folder opened as a read-only analytics `Context`, for notebooks.

The same trend, breakdown, search and stats functions then run over the export, with no
store and no server: an in-memory DuckDB holds empty registry tables (migrations at head) and
views named like the store's (`executions`, `execution_nodes`, and `execution_annotations`
over the export's `annotations`, which search's tags, has_note and rating filters read) that
read the export's files and give its columns back the store's types. Whoever can read the
folder can read all of it, so only an admin viewer (`EXPORT_READER`) may read it: any other
viewer is refused (AccessDenied), where it got answers by rules the server does not follow.

An export written before annotations were exported (no `annotations/annotations.parquet`)
still opens, but anything reading annotations fails with DuckDB's "Invalid Input Error"
saying to run an export cycle: answering "no annotated runs" would be wrong.
"""

from __future__ import annotations

from pathlib import Path

from analytics.access.permissions import Viewer
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import NotFound
from analytics.core.migrations.v0002_executions import NODE_STRUCT
from analytics.core.store import Connection
from analytics.exports.layout import (
    ANNOTATIONS,
    EXECUTION_NODES,
    EXECUTIONS,
    FLOWS_FILE,
    SCHEMA_FILE,
    STAGING,
    Table,
    absent_table_error,
)

EXPORT_READER = Viewer("export-reader", "admin")
ADMINS_ONLY = (
    "an export carries no access control (whoever reads the folder reads all of it): read it as"
    " an admin, EXPORT_READER; a user's answers would follow other rules than the server's"
)

# store type of each export column that the export writes as text or as a UTC instant
_STORE_TYPES = {
    "id": "UUID",
    "execution_id": "UUID",
    "replay_of": "UUID",
    "created_at": "TIMESTAMP",
    "inputs": "JSON",
    "outputs": "JSON",
    "node_results": "JSON",
    "errors": "JSON",
    "meta": "JSON",
    "nodes": f"{NODE_STRUCT}[]",
    "updated_at": "TIMESTAMP",
}
# the export's name of a table whose store name differs
_STORE_NAMES = {ANNOTATIONS.name: "execution_annotations"}


def _files(root: Path, table: Table) -> str:
    pattern = table.name + "/date=*/*.parquet" if table.partitioned else table.path
    return str(root / pattern).replace("'", "''")


def _view(root: Path, table: Table) -> str:
    """`table` over the export, with the store's types (and name); an empty table when it has
    no files, or one failing when read if the export should have it (`absent_table_error`)."""
    name = _STORE_NAMES.get(table.name, table.name)
    cols = []
    for c in table.columns:
        kind = _STORE_TYPES.get(c.name)
        cols.append(f"CAST({c.name} AS {kind}) AS {c.name}" if kind else c.name)
    if table.partitioned and any((root / table.name).glob("date=*/*.parquet")):
        source = f"read_parquet('{_files(root, table)}', hive_partitioning = true, union_by_name = true)"
        return f"CREATE VIEW {name} AS SELECT {', '.join(cols)} FROM {source}"
    if not table.partitioned and (root / table.path).is_file():
        return f"CREATE VIEW {name} AS SELECT {', '.join(cols)} FROM read_parquet('{_files(root, table)}')"
    missing = absent_table_error(root, table)
    if missing is not None:
        # every column depends on error(): no query reading the view can answer without it
        fail = "error('{}')".format(missing.replace("'", "''"))
        failing = ", ".join(f"CAST(x AS {c.type}) AS {c.name}" for c in table.columns)
        return (
            f"CREATE VIEW {name} AS SELECT {', '.join(cols)} FROM"
            f" (SELECT {failing} FROM (SELECT {fail} AS x) WHERE x IS NULL)"
        )
    empty = ", ".join(f"CAST(NULL AS {c.type}) AS {c.name}" for c in table.columns)
    return f"CREATE VIEW {name} AS SELECT {', '.join(cols)} FROM (SELECT {empty}) WHERE false"


def _mount(conn: Connection, root: Path) -> None:
    conn.execute("DROP VIEW execution_nodes")
    conn.execute("DROP TABLE executions")
    conn.execute("DROP TABLE execution_annotations")
    conn.execute(_view(root, EXECUTIONS))
    conn.execute(_view(root, EXECUTION_NODES))
    conn.execute(_view(root, ANNOTATIONS))
    flows = root / FLOWS_FILE
    if flows.exists():
        conn.execute(
            "INSERT INTO flows (id, user_id, name, nodes, edges, created_at, updated_at, version)"
            " SELECT id, user_id, name, '[]', '[]', CAST(updated_at AS TIMESTAMP),"
            " CAST(updated_at AS TIMESTAMP), version FROM read_parquet(?)",
            [str(flows)],
        )
    # runs of flows the export no longer lists (deleted since) still get a directory entry
    conn.execute(
        "INSERT INTO flows (id, user_id, name, nodes, edges, created_at, updated_at, version)"
        " SELECT flow_id, any_value(user_id), flow_id, '[]', '[]', min(created_at), max(created_at), ''"
        " FROM executions WHERE flow_id NOT IN (SELECT id FROM flows) GROUP BY flow_id"
    )


def open_export(folder: str | Path) -> Context:
    """Open an export folder (e.g. `data/exports`) for the analytics functions; read with
    `EXPORT_READER`. Nothing is written to the folder. An export holding no runs yet (or whose
    first cycle is still running) opens empty."""
    root = Path(folder).resolve()
    if not any((root / name).exists() for name in (SCHEMA_FILE, EXECUTIONS.name, STAGING)):
        raise NotFound(
            f"{root} is not a flowhistory export (no {SCHEMA_FILE}, no {EXECUTIONS.name}/, no {STAGING}/)"
        )
    ctx = open_context(Settings(db_path=Path(":memory:"), seed_prices=False), migrate=False)
    try:
        migrations.upgrade(ctx.store)
        ctx.store.write(lambda c: _mount(c, root))
        ctx.directory.reload(ctx.store)
        ctx.directory.admins_only = ADMINS_ONLY
        ctx.store.read(ctx.counters.load)
        if (root / ANNOTATIONS.path).is_file():  # runs whose detail shows an annotation
            ctx.annotated.update(
                r[0]
                for r in ctx.store.read(
                    lambda c: c.execute("SELECT execution_id::VARCHAR FROM execution_annotations").fetchall()
                )
            )
    except BaseException:
        ctx.close()
        raise
    return ctx
