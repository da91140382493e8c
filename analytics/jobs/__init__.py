"""The in-process scheduler, the registry of the jobs it runs, and the runtime the server
starts and stops (scheduler + alert engine + webhooks).

Imports: every room below (the registry and the runtime import the rooms whose jobs they run).
"""
