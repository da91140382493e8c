"""Alert rules, their state per (rule, flow), transitions, webhook channels and deliveries.

A rule scoped to "all flows a user owns" is judged per flow, so state and transitions are
keyed by (rule_id, flow_id). State rows are replaced as a batch after each evaluation (delete
then insert in one transaction), so the table has no key that DuckDB would have to check
against rows deleted in the same transaction. Times are naive UTC, as everywhere else.
"""

UPGRADE = [
    """
    CREATE TABLE alert_rules (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        flow_id VARCHAR,
        owned_by VARCHAR,
        flow_version VARCHAR,
        node_id VARCHAR,
        model VARCHAR,
        window_s BIGINT NOT NULL CHECK (window_s > 0),
        operator VARCHAR NOT NULL,
        threshold DOUBLE NOT NULL,
        warning_threshold DOUBLE,
        recovery_threshold DOUBLE,
        pending_s BIGINT NOT NULL DEFAULT 0,
        keep_firing_s BIGINT NOT NULL DEFAULT 0,
        min_runs BIGINT NOT NULL DEFAULT 1,
        no_data VARCHAR NOT NULL,
        renotify_s BIGINT,
        paused BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        CHECK ((flow_id IS NULL) <> (owned_by IS NULL))
    )
    """,
    "CREATE TABLE alert_rule_channels (rule_id VARCHAR NOT NULL, channel_id VARCHAR NOT NULL)",
    """
    CREATE TABLE alert_states (
        rule_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        since TIMESTAMP NOT NULL,
        pending_since TIMESTAMP,
        last_breach_at TIMESTAMP,
        last_notified_at TIMESTAMP,
        value DOUBLE,
        runs BIGINT,
        evaluated_at TIMESTAMP
    )
    """,
    """
    CREATE TABLE alert_transitions (
        id VARCHAR NOT NULL,
        rule_id VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        occurred_at TIMESTAMP NOT NULL,
        from_state VARCHAR NOT NULL,
        to_state VARCHAR NOT NULL,
        event VARCHAR NOT NULL,
        value DOUBLE,
        runs BIGINT,
        threshold DOUBLE,
        reason VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE alert_channels (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL,
        url VARCHAR NOT NULL,
        secret VARCHAR NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT true,
        disabled_reason VARCHAR,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE alert_deliveries (
        id VARCHAR NOT NULL,
        notification_id VARCHAR NOT NULL,
        channel_id VARCHAR NOT NULL,
        rule_id VARCHAR,
        flow_id VARCHAR,
        transition_id VARCHAR,
        event VARCHAR NOT NULL,
        attempt INTEGER NOT NULL,
        attempted_at TIMESTAMP NOT NULL,
        ok BOOLEAN NOT NULL,
        status_code INTEGER,
        error VARCHAR,
        duration_ms DOUBLE,
        will_retry BOOLEAN NOT NULL,
        body VARCHAR NOT NULL
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE alert_deliveries",
    "DROP TABLE alert_channels",
    "DROP TABLE alert_transitions",
    "DROP TABLE alert_states",
    "DROP TABLE alert_rule_channels",
    "DROP TABLE alert_rules",
]
