"""Alert rules on flow metrics, their evaluation, and webhook notifications (docs/alerts.md).

Imports: core, access, history, trends.
"""
