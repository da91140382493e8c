"""flowhistory's store and every query over it; no HTTP lives here.

The API, the CLI, the scheduler and notebooks all call these functions.
"""
