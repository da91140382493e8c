"""The foundation every room stands on: the DuckDB store and its writer, migrations, settings,
the typed errors, the clock, JSON, and the Context the server, CLI and notebooks open.

Imports: nothing else of analytics, except `context.py`: the data plane's composition root
bundles the state classes of the rooms above (access's directory, history's counters, page
boundaries and rollup state, cost's price table), each of which imports only core.
"""
