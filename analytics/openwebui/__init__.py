"""Open WebUI as the source of users, groups and flows: its database read-only, mirrored into
the in-memory directory by a poller; runs of flows gone from it are deleted after a grace.

Imports: core, access, flows, history.
"""
