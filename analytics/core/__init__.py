"""The foundation every room stands on: the DuckDB store and its writer, migrations, settings,
the typed errors, the clock, and the Context the server, CLI and notebooks open.

Imports: nothing else of analytics (every other room may import core).
"""
