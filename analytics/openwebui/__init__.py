"""Open WebUI beside flowhistory: its database read-only as the source of users, groups and
flows (db, sync: mirrored into the in-memory directory by a poller; runs of flows gone from it
are deleted after a grace), and the import of its existing history (importer).

Imports: core, access, flows, history.
"""
