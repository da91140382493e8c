"""Rollups keep an unknown cost as null: their sums were 0 for runs that have no price.

A trend's cost is null where no run has a known cost (metrics.py), as a run's own cost and
/cost say; the rollups summed such runs as 0. Their rows cannot be mended in place (a 0 may be
a price of 0), so every rolled (flow, day) is marked dirty: it is read from `executions` until
the refresh job rebuilds it by the new rule.

Downgrade: the older code adds the sums up as numbers, so a null becomes 0 again, its rule.
"""

UPGRADE = [
    "ALTER TABLE trend_rollups ALTER COLUMN cost DROP NOT NULL",
    "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT flow_id, day FROM trend_rollups",
]

DOWNGRADE = [
    "UPDATE trend_rollups SET cost = 0 WHERE cost IS NULL",
    "ALTER TABLE trend_rollups ALTER COLUMN cost SET NOT NULL",
]
