"""Alert notifications not yet delivered, kept so that a restart resumes their retries.

The dispatcher held them in memory only: a retry still waiting when the server stopped was never
made, and the delivery log went on saying `will_retry`. A row is written when a notification is
queued; each failed attempt that will be retried moves its `attempt` on, and its last attempt
deletes it, in the same transaction as that attempt's delivery row. `seq` keeps the order they
were queued in (a channel's notifications go out in that order).

Downgrade: the table goes; what waits in it is not sent (the older code's rule at a restart).
"""

UPGRADE = [
    """
    CREATE TABLE alert_outbox (
        seq BIGINT NOT NULL,
        notification_id VARCHAR NOT NULL,
        channel_id VARCHAR NOT NULL,
        event VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        rule_id VARCHAR,
        flow_id VARCHAR,
        transition_id VARCHAR,
        attempt INTEGER NOT NULL,
        queued_at TIMESTAMP NOT NULL
    )
    """,
]

DOWNGRADE = ["DROP TABLE alert_outbox"]
