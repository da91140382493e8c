"""Where a batch's time goes, stage by stage, in process (no HTTP): the bulk path and the per-item one.

The store is seeded as batch_bench seeds it; the benchmark's bodies (NDJSON, `--batch` runs
each) go through `batch_bulk.ingest_ndjson` (timed per stage) and, into a second store, through
the per-item path (`ingest.ingest_batch`), alternating batch by batch so machine load hits both.

    python -m bench.batch_stages [--runs 20000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.history import batch_bulk, ingest
from bench.batch_bench import ndjson_bodies, seed


def _store(path: Path) -> Context:
    ctx = open_context(Settings(db_path=path))
    seed(ctx)
    return ctx


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=5_000)
    args = p.parse_args()
    runs, bodies = ndjson_bodies(args.runs, args.batch)
    admin = Viewer("bench-admin", "admin")
    folder = Path(tempfile.mkdtemp())
    try:
        bulk_ctx, item_ctx = _store(folder / "bulk.duckdb"), _store(folder / "item.duckdb")
        timings = batch_bulk.Timings()
        bulk_s = item_s = 0.0
        for body in bodies:
            t = time.perf_counter()
            batch_bulk.ingest_ndjson(bulk_ctx, admin, body, timings)
            bulk_s += time.perf_counter() - t
            t = time.perf_counter()
            ingest.ingest_batch(item_ctx, admin, batch_bulk.ndjson_items(body))
            item_s += time.perf_counter() - t
        bulk_ctx.close()
        item_ctx.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    n = len(runs)
    print(
        f"{n:,} runs in batches of {args.batch:,}: {timings.bulk:,} decided in bulk, {timings.per_item:,} per item"
    )
    print(f"per-item path (today's)      {n / item_s:>9,.0f} runs/s  {item_s:6.2f} s")
    print(f"bulk path                    {n / bulk_s:>9,.0f} runs/s  {bulk_s:6.2f} s")
    for stage, seconds in timings.seconds.items():
        print(f"  {stage:<27}{n / seconds:>9,.0f} runs/s  {seconds:6.2f} s")


if __name__ == "__main__":
    main()
