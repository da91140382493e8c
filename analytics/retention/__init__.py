"""Retention: policies, the plan (dry run), archive-then-delete, reclaiming space, restore.

Modules, one job each: `policies` (the rules and where they are stored), `plan` (which runs a
policy deletes or trims), `archive` (Parquet files of what is removed, read back by restore),
`apply` (one pass: archive, delete and trim in one writer transaction, bookkeeping, log),
`reclaim_space` (rewrite the executions table so the file shrinks), `restore` (a range back
from the archive), `runs` (the log of passes and the lock).

Imports: core, access, history, trends, exports (the archive is in the export layout).
"""
