"""Who is calling and what they may see: credentials to viewers, users, groups and keys, the
in-memory directory, per-flow permissions and the SQL scope of the runs a caller sees.

Imports: core.
"""
