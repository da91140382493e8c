"""Executions and their per-node facts.

`created_at` is a UTC TIMESTAMP with microseconds (the API answers epoch seconds where the
contract says so). JSON payloads are stored as text; `outputs` is NULL with `outputs_same`
set when it is an exact copy of `node_results`, which is how the editor sends it.
Per-node facts carry flow_id and created_at so node analytics never join or parse JSON.
"""

UPGRADE = [
    """
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
        tokens_out BIGINT
    )
    """,
    """
    CREATE TABLE execution_nodes (
        execution_id UUID NOT NULL,
        flow_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        node_id VARCHAR NOT NULL,
        node_type VARCHAR,
        model VARCHAR,
        status VARCHAR NOT NULL,
        duration_ms BIGINT,
        tokens_in BIGINT,
        tokens_out BIGINT,
        error VARCHAR
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE execution_nodes",
    "DROP TABLE executions",
]
