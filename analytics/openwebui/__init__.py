"""Open WebUI beside flowhistory: its database as a source (identity, flows, history import).

Imports: core, access, flows, history.
"""
