"""A run with no model node costs 0, not unknown: it owes nothing, as /api/v1/cost counted it.

Such runs were stored with a `null` cost, so the history, the overview and the trends said "—"
(unknown) where the cost screen said $0 for the same runs. New runs are stored by the new rule
(node_facts.run_cost); this mends the runs already stored. The (flow, day) pairs it changes are
marked dirty first, so their rollups are read from `executions` until the refresh job rebuilds
them; the export's day fingerprints cover `cost`, so those days are exported again.

Downgrade: such runs go back to `null` (the older code's rule).
"""

_NO_MODEL = "NOT coalesce(list_bool_or([n.model IS NOT NULL FOR n IN nodes]), false)"

UPGRADE = [
    "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT flow_id, CAST(created_at AS DATE) FROM executions"
    f" WHERE cost IS NULL AND {_NO_MODEL}",
    f"UPDATE executions SET cost = 0 WHERE cost IS NULL AND {_NO_MODEL}",
]

DOWNGRADE = [
    "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT flow_id, CAST(created_at AS DATE) FROM executions"
    f" WHERE cost = 0 AND {_NO_MODEL}",
    f"UPDATE executions SET cost = NULL WHERE cost = 0 AND {_NO_MODEL}",
]
