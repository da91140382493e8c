"""Per-flow insights: node breakdown, failure signatures, reliability, version regressions,
anomalies.

Imports: core, access, history.
"""
