"""Alert channels of three kinds: signed webhooks (as before), Slack-compatible webhooks, email.

`kind` is `webhook` for every channel made before (their clients keep working unchanged);
`config` holds what a kind needs besides a URL, as JSON: `{"recipients": [...]}` for email.
An email channel has no URL and no secret, so those stay empty strings (their columns are NOT
NULL, and loosening that would mean rebuilding the table).

Downgrade: the older schema knows only webhooks, so a Slack or email channel cannot survive as
what it is; rather than delete it (and its delivery log) or let it be sent to as a signed
webhook, it is kept disabled with the reason saying so.
"""

UPGRADE = [
    "ALTER TABLE alert_channels ADD COLUMN kind VARCHAR DEFAULT 'webhook'",
    "UPDATE alert_channels SET kind = 'webhook' WHERE kind IS NULL",
    "ALTER TABLE alert_channels ALTER COLUMN kind SET NOT NULL",
    "ALTER TABLE alert_channels ADD COLUMN config JSON",
]

DOWNGRADE = [
    """
    UPDATE alert_channels
    SET enabled = false,
        disabled_reason = kind || ' channel: disabled by a schema downgrade (webhooks only)'
    WHERE kind <> 'webhook'
    """,
    "ALTER TABLE alert_channels DROP COLUMN config",
    "ALTER TABLE alert_channels DROP COLUMN kind",
]
