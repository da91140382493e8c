"""Executions, with their per-node facts.

`created_at` is a UTC TIMESTAMP with microseconds (the API answers epoch seconds where the
contract says so). JSON payloads are stored as text; `outputs` is NULL with `outputs_same`
set when it is an exact copy of `node_results`, which is how the editor sends it.

Analytics columns are filled at ingest: token totals (`tokens_estimated` when any part was
estimated from text length), `cost` in USD from the price table, the `flow_version` that ran,
and `replay_of` linking a re-run to its original.

Per-node facts live in `nodes`, a list of structs on the execution's own row, and the view
`execution_nodes` shows them as a narrow table (flow_id and created_at included), so node
analytics never parse JSON. On the row rather than in a table of their own because a run
and its nodes must commit together: as one row they go in one INSERT, which needs no
explicit transaction, cannot be half-written, and is deleted with its run. Every DuckDB call
from the writer costs several GIL hand-overs with a busy event loop; one statement per group
commit instead of four made the writer ~3x faster under load.
"""

NODE_STRUCT = (
    "STRUCT(node_id VARCHAR, node_type VARCHAR, model VARCHAR, status VARCHAR,"
    " duration_ms BIGINT, tokens_in BIGINT, tokens_out BIGINT, tokens_estimated BOOLEAN,"
    " cost DOUBLE, error VARCHAR)"
)

# named so the retention compaction can rebuild the table with exactly this DDL
EXECUTIONS_TABLE = f"""
    CREATE TABLE executions (
        id UUID PRIMARY KEY,
        flow_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        status VARCHAR NOT NULL CHECK (status IN ('success', 'error', 'aborted')),
        execution_time BIGINT NOT NULL CHECK (execution_time >= 0),
        created_at TIMESTAMP NOT NULL,
        inputs JSON,
        outputs JSON,
        outputs_same BOOLEAN NOT NULL DEFAULT false,
        node_results JSON,
        errors JSON,
        meta JSON,
        node_count INTEGER NOT NULL DEFAULT 0,
        tokens_in BIGINT,
        tokens_out BIGINT,
        tokens_estimated BOOLEAN NOT NULL DEFAULT false,
        cost DOUBLE,
        flow_version VARCHAR,
        replay_of UUID,
        nodes {NODE_STRUCT}[] NOT NULL DEFAULT []
    )
    """
# A small flow's runs are scattered among every other flow's (rows arrive in time order):
# the index lets its queries fetch them instead of scanning every flow. DuckDB uses it
# only for selective lookups (big flows still scan), and ingest did not get slower.
FLOW_ID_INDEX = "CREATE INDEX executions_flow_id ON executions (flow_id)"
NODES_VIEW = """
    CREATE VIEW execution_nodes AS
    SELECT id AS execution_id, flow_id, user_id, created_at, n.*
    FROM (SELECT id, flow_id, user_id, created_at, unnest(nodes) AS n FROM executions)
    """

UPGRADE = [EXECUTIONS_TABLE, FLOW_ID_INDEX, NODES_VIEW]

DOWNGRADE = [
    "DROP VIEW execution_nodes",
    "DROP INDEX executions_flow_id",
    "DROP TABLE executions",
]
