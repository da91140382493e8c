"""Metrics over time: the query model and the scan over runs (metrics), and the daily rollups.

Imports: core, access, history.
"""
