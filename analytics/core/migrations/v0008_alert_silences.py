"""Silences: a rule, or every rule on a flow, muted from `starts_at` to `ends_at`.

A silence mutes notifications, not evaluation: states and transitions are still recorded.
A transition whose notification a silence held back names it (`alert_transitions.silenced_by`);
`alert_states.muted_event` remembers the event held back, so the first evaluation after the
silence ends can tell the receivers what they missed. Expiring a silence sets `ends_at` to now
(and `expired_by`); rows are kept as the record of who muted what.
"""

UPGRADE = [
    """
    CREATE TABLE alert_silences (
        id VARCHAR PRIMARY KEY,
        rule_id VARCHAR,
        flow_id VARCHAR,
        starts_at TIMESTAMP NOT NULL,
        ends_at TIMESTAMP NOT NULL,
        comment VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        expired_by VARCHAR,
        CHECK ((rule_id IS NULL) <> (flow_id IS NULL)),
        CHECK (ends_at >= starts_at)
    )
    """,
    "ALTER TABLE alert_transitions ADD COLUMN silenced_by VARCHAR",
    "ALTER TABLE alert_states ADD COLUMN muted_event VARCHAR",
]

DOWNGRADE = [
    "ALTER TABLE alert_states DROP COLUMN muted_event",
    "ALTER TABLE alert_transitions DROP COLUMN silenced_by",
    "DROP TABLE alert_silences",
]
