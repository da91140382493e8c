"""The execution history: ingest and node facts, list/get/stats/delete, search and filters,
paging, counters, annotations, compare, replay and downloads.

Imports: core, access, flows, cost (pricing at ingest).
"""
