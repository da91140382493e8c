"""Metrics over time: the query model, the scan over runs, and the daily rollups.

Imports: core, access, history.
"""
