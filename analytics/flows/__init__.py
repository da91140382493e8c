"""The flow registry: flows, their owners, versions and access control.

Imports: core, access, history.
"""
