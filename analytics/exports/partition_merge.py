"""Merge a partition's files into one when it holds more than a few (appends add one a cycle).

The merge reads the published files (not the store), so the data is exactly what was exported
and the day's record stays valid. Files are streamed batch by batch through pyarrow (bounded
memory, local or S3 alike) into one staged file, which then replaces the partition: locally by
exchanging the partition's folder with a prepared one in one rename, so a reader lists either
the old files or the new one, never both (docs/exports.md: the one way to see neither).
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow.parquet as pq

from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.exports.layout import PARTITIONED
from analytics.exports.publish import staging, target_lock
from analytics.exports.run import describe_error, record_cycle, write_manifest
from analytics.exports.targets import FileEntry, Target, open_target

ROW_GROUP_ROWS = 122_880


def merge_files(target: Target, files: list[FileEntry], dest: Any) -> int:
    """Stream `files` into one zstd Parquet file at local path `dest`; rows written."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for f in files:
            with target.fs.open_input_file(f"{target.root}/{f.path}") as handle:
                source = pq.ParquetFile(handle)
                if writer is None:
                    writer = pq.ParquetWriter(str(dest), source.schema_arrow, compression="zstd")
                for batch in source.iter_batches(batch_size=ROW_GROUP_ROWS):
                    writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
                    rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def compact_target(target: Target, max_files: int, grace_s: float) -> dict[str, Any]:
    """Merge every partition of `target` holding more than `max_files` files into one file."""
    merged: dict[str, int] = {}
    with target_lock(target):
        target.upgrade()
        for table in PARTITIONED:
            count = 0
            for day, files in sorted(target.partitions(table.name).items()):
                if len(files) <= max_files:
                    continue
                with staging(target) as folder:
                    dest = folder / "merged.parquet"
                    merge_files(target, files, dest)
                    target.replace_partition(table.name, day, [dest])
                count += 1
            merged[table.name] = count
        tables = write_manifest(target)
        target.collect_garbage(grace_s)
    return {"partitions_compacted": merged, "tables": tables}


def compact(ctx: Context) -> dict[str, Any]:
    """Compact the configured target; the result (or error) is recorded for the status."""
    started = utc_now()
    t0 = time.perf_counter()
    target = open_target(ctx.settings)
    try:
        summary = compact_target(
            target, ctx.settings.export_max_files_per_partition, ctx.settings.export_grace_s
        )
    except BaseException as exc:
        record_cycle(ctx, target.url, "compaction", started, describe_error(exc), None)
        raise
    summary["duration_s"] = round(time.perf_counter() - t0, 3)
    record_cycle(ctx, target.url, "compaction", started, None, summary)
    return summary
