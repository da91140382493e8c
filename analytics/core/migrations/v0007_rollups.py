"""Daily rollups for trends over big scopes: exact counts and sums, duration histograms.

`trend_rollups` holds, per (flow, UTC day, status, flow version), the run count and the sums a
trend needs, and the run count per logarithmic duration bin as two parallel lists (`bins`,
`counts`; see analytics/trends/rollups.py), from which percentiles are read to within the bin width.
Lists rather than a row per bin: the biggest flow's 90 days are ~300 rows to scan, not ~30k. Days before
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
        estimated BOOLEAN NOT NULL,
        bins SMALLINT[] NOT NULL,
        counts BIGINT[] NOT NULL
    )
    """,
    "CREATE TABLE rollup_state (id INTEGER PRIMARY KEY CHECK (id = 1), rolled_until DATE NOT NULL)",
    "CREATE TABLE rollup_dirty (flow_id VARCHAR NOT NULL, day DATE NOT NULL, PRIMARY KEY (flow_id, day))",
]

DOWNGRADE = [
    "DROP TABLE rollup_dirty",
    "DROP TABLE rollup_state",
    "DROP TABLE trend_rollups",
]
