"""Sums of counts (tokens, milliseconds) that stop at 2**62 instead of overflowing.

A run's tokens are capped at 2**62 when it is stored and a duration at 2**53, but a sum over
many runs can pass BIGINT's 2**63: DuckDB then refuses the cast (a 500) and Arrow the int64.
Every total of such counts goes through here, so an absurd report reads as the cap everywhere
(node breakdown, cost, trends, rollups) rather than failing in some places.
"""

from __future__ import annotations

CAP = 2**62


def capped_sum(expr: str) -> str:
    """SQL: `sum(expr)` as a BIGINT no larger than CAP (null when there is nothing to add)."""
    return f"CAST(CASE WHEN sum({expr}) > {CAP} THEN {CAP} ELSE sum({expr}) END AS BIGINT)"


def capped(total: int) -> int:
    """A total added up in Python, capped as `capped_sum` caps it in SQL."""
    return min(total, CAP)
