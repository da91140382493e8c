"""Who is calling and what they may do: credentials to viewers, users, groups and keys, the
in-memory directory of who may see what, and per-flow permissions.

Imports: core.
"""
