"""Users, groups, API keys and flows: the small tables access checks are made from.

A flow's `version` is a hash of its nodes and edges; every definition a flow has had is kept in
`flow_versions`, so a run stamped with a version can be replayed on the graph that ran it.
"""

UPGRADE = [
    """
    CREATE TABLE users (
        id VARCHAR PRIMARY KEY,
        name VARCHAR,
        email VARCHAR,
        role VARCHAR NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user', 'pending')),
        created_at TIMESTAMP NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE groups (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        description VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE group_members (
        group_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        PRIMARY KEY (group_id, user_id)
    )
    """,
    """
    CREATE TABLE api_keys (
        id VARCHAR PRIMARY KEY,
        user_id VARCHAR NOT NULL,
        key_hash VARCHAR NOT NULL UNIQUE,
        prefix VARCHAR NOT NULL,
        name VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE flows (
        id VARCHAR PRIMARY KEY,
        user_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        description VARCHAR,
        nodes JSON NOT NULL,
        edges JSON NOT NULL,
        meta JSON,
        access_control JSON,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        version VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE flow_versions (
        flow_id VARCHAR NOT NULL,
        version VARCHAR NOT NULL,
        nodes JSON NOT NULL,
        edges JSON NOT NULL,
        flow_updated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (flow_id, version)
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE flow_versions",
    "DROP TABLE flows",
    "DROP TABLE api_keys",
    "DROP TABLE group_members",
    "DROP TABLE groups",
    "DROP TABLE users",
]
