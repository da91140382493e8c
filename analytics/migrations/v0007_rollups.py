"""Daily rollups for trends over big scopes: exact counts and sums, duration histograms.

`trend_rollups` holds, per (flow, UTC day, status, flow version), the run count and the sums a
trend needs; `duration_bins` the run count per logarithmic duration bin (see
analytics/rollups.py), from which percentiles are read to within the bin width. Days before
`rollup_state.rolled_until` are rolled up, except the (flow, day) pairs in `rollup_dirty`,
which a write changed since: those, and every later day, are read from `executions`.
"""

UPGRADE = [
    """
    CREATE TABLE trend_rollups (
        flow_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        status VARCHAR NOT NULL,
        flow_version VARCHAR,
        runs BIGINT NOT NULL,
        duration_sum BIGINT NOT NULL,
        tokens_in BIGINT NOT NULL,
        tokens_out BIGINT NOT NULL,
        cost DOUBLE NOT NULL,
        estimated BOOLEAN NOT NULL
    )
    """,
    """
    CREATE TABLE duration_bins (
        flow_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        status VARCHAR NOT NULL,
        flow_version VARCHAR,
        bin SMALLINT NOT NULL,
        runs BIGINT NOT NULL
    )
    """,
    "CREATE TABLE rollup_state (id INTEGER PRIMARY KEY CHECK (id = 1), rolled_until DATE NOT NULL)",
    "CREATE TABLE rollup_dirty (flow_id VARCHAR NOT NULL, day DATE NOT NULL, PRIMARY KEY (flow_id, day))",
]

DOWNGRADE = [
    "DROP TABLE rollup_dirty",
    "DROP TABLE rollup_state",
    "DROP TABLE duration_bins",
    "DROP TABLE trend_rollups",
]
