"""Retention: policies (global and per flow) and the log of every retention, compaction and restore.

The global policy is the row with `flow_id = '*'`; a flow's own row replaces it for that flow
as a whole. NULL in a rule means "no limit". The log keeps what each pass did, so its last
result is visible after a restart.
"""

UPGRADE = [
    """
    CREATE TABLE retention_policies (
        flow_id VARCHAR PRIMARY KEY,
        max_age_days DOUBLE CHECK (max_age_days > 0),
        failed_max_age_days DOUBLE CHECK (failed_max_age_days > 0),
        keep_last BIGINT CHECK (keep_last >= 1),
        payload_ttl_days DOUBLE CHECK (payload_ttl_days > 0),
        archive BOOLEAN NOT NULL DEFAULT true,
        updated_by VARCHAR NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE retention_runs (
        id UUID PRIMARY KEY,
        kind VARCHAR NOT NULL CHECK (kind IN ('retention', 'compact', 'restore')),
        trigger VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        ok BOOLEAN NOT NULL,
        error VARCHAR,
        summary JSON NOT NULL
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE retention_runs",
    "DROP TABLE retention_policies",
]
