"""The in-process scheduler and the registry of the jobs it runs.

Imports: core (the registry imports the rooms whose jobs it schedules).
"""
