"""Export state: what each export target holds per day, and the history of export cycles.

`export_days` keeps, per target and UTC day, the fingerprint of the runs that were exported
(count and an order-free hash of id, cost, per-node facts and payload presence): comparing it with the store's
tells a cycle which days to skip, append to or rewrite. `export_cycles` records each export
and compaction (ok or the error) for the status.
"""

UPGRADE = [
    """
    CREATE TABLE export_days (
        target VARCHAR NOT NULL,
        day DATE NOT NULL,
        runs BIGINT NOT NULL,
        node_rows BIGINT NOT NULL,
        fingerprint UBIGINT NOT NULL,
        exported_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE export_cycles (
        target VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        ok BOOLEAN NOT NULL,
        error VARCHAR,
        summary JSON
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE export_cycles",
    "DROP TABLE export_days",
]
