"""The execution history: ingest and node facts, list/get/stats/delete, search and its filters,
the runs a caller sees as SQL (scope), paging, counters, annotations, compare, replay, downloads,
and the record of which rolled days a write changed (changes).

Imports: core, access.
"""
