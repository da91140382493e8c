"""Parquet exports of the store: incremental, compacted, to a local folder or S3 (docs/exports.md);
an export folder opened as a Context for notebooks (open_folder); ad-hoc SQL over it in worker
processes (sql_sandbox, sql_worker).

Imports: core, access.
"""

from __future__ import annotations

from analytics.exports.layout import EXPORT_SCHEMA_VERSION
from analytics.exports.partition_merge import compact
from analytics.exports.publish import ExportBusy, publish_partitioned
from analytics.exports.run import describe_error, run_export
from analytics.exports.status import export_status
from analytics.exports.targets import Target, open_target

__all__ = [
    "EXPORT_SCHEMA_VERSION",
    "ExportBusy",
    "Target",
    "compact",
    "describe_error",
    "export_status",
    "open_target",
    "publish_partitioned",
    "run_export",
]
