"""The price table and annotations (notes, tags, rating) on executions.

Prices: a model pattern (glob, e.g. `gpt-4o-mini*`) with the price per million input and output
tokens from a date on; the most specific pattern valid at a run's date prices it.
"""

UPGRADE = [
    """
    CREATE TABLE prices (
        model_pattern VARCHAR NOT NULL,
        input_per_million DOUBLE NOT NULL CHECK (input_per_million >= 0),
        output_per_million DOUBLE NOT NULL CHECK (output_per_million >= 0),
        valid_from DATE NOT NULL,
        PRIMARY KEY (model_pattern, valid_from)
    )
    """,
    """
    CREATE TABLE execution_annotations (
        execution_id UUID PRIMARY KEY,
        flow_id VARCHAR NOT NULL,
        note VARCHAR,
        tags VARCHAR[] NOT NULL DEFAULT [],
        rating SMALLINT CHECK (rating IN (-1, 1)),
        updated_by VARCHAR NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE execution_annotations",
    "DROP TABLE prices",
]
