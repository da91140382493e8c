"""Streaming downloads and ad-hoc SQL at 1M runs (issue 4): rows/s and MB/s of a whole-store
download in each format with the process's peak memory while streaming, and the sandbox's
cost (a fresh locked-down DuckDB per query) with a 90-day daily trend over the export.

    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.sql_bench             # 1M runs
    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.sql_bench --runs 20000

Works on a copy of the cached flowhistory store, exported once by the real exporter, through
the library (what the routes call). The copy and the export are deleted afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from analytics.access.permissions import Viewer
from analytics.core.batch_formats import Format
from analytics.core.clock import file_stamp
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.exports import run_export
from analytics.exports.sql_sandbox import Limits, run_sql
from analytics.history.download import download_executions
from bench.common import OUT, log, write_results
from bench.stores import copy_store, flowhistory_store

TREND = """
SELECT date, count(*) AS runs, count(*) FILTER (WHERE status = 'error') AS errors,
       quantile_cont(execution_time, 0.5) AS p50, quantile_cont(execution_time, 0.95) AS p95
FROM executions WHERE date >= (SELECT max(date) FROM executions) - 89
GROUP BY date ORDER BY date
"""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def run(store_dir: Path, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    db = copy_store(store_dir, "flowhistory.duckdb", work)
    root = work / "exports"
    settings = Settings(db_path=db, export_url=str(root), scheduler_enabled=False)
    res: dict[str, Any] = {}
    with open_context(settings) as ctx:
        runs = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()[0][0])
        res["runs"] = runs
        run_export(ctx)
        admin = Viewer("admin", "admin")
        for fmt in Format:
            before = peak = _rss_mb()
            size = 0
            t = time.perf_counter()
            for i, chunk in enumerate(download_executions(ctx, admin, fmt).chunks):
                size += len(chunk)
                if i % 20 == 0:
                    peak = max(peak, _rss_mb())
            seconds = time.perf_counter() - t
            res[f"download_{fmt.value}"] = {
                "seconds": round(seconds, 1),
                "rows_per_s": round(runs / seconds),
                "mb_per_s": round(size / seconds / 1e6, 1),
                "mb": round(size / 1e6),
                "rss_before_mb": round(before),
                "rss_peak_mb": round(peak),
            }
            log(
                f"download {fmt.value}: {runs:,} rows, {size / 1e6:,.0f} MB in {seconds:.1f} s "
                f"({runs / seconds:,.0f} rows/s, {size / seconds / 1e6:.0f} MB/s); RSS {before:.0f} -> peak {peak:.0f} MB"
            )
    limits = Limits(memory_limit="1GB", threads=2)
    res["sandbox_select_1_ms"] = _median_ms(lambda: run_sql(root, "SELECT 1", limits=limits), 20)
    res["sandbox_trend_90d_ms"] = _median_ms(lambda: run_sql(root, TREND, limits=limits), 5)
    log(
        f"sandbox: SELECT 1 {res['sandbox_select_1_ms']} ms (fresh connection, views, lock-down); "
        f"90-day daily trend {res['sandbox_trend_90d_ms']} ms"
    )
    return res


def markdown(res: dict[str, Any]) -> str:
    lines = [f"| operation ({res['runs']:,} runs) | result |", "|---|---|"]
    for fmt in Format:
        d = res[f"download_{fmt.value}"]
        lines.append(
            f"| download, every run as {fmt.value} | {d['seconds']} s: {d['rows_per_s']:,} rows/s, "
            f"{d['mb_per_s']} MB/s ({d['mb']:,} MB); RSS {d['rss_before_mb']} → peak {d['rss_peak_mb']} MB |"
        )
    lines.append(
        f"| sandbox, `SELECT 1` (fresh DuckDB, views, lock-down) | {res['sandbox_select_1_ms']} ms |"
    )
    lines.append(
        f"| sandbox, 90-day daily trend (runs, errors, p50, p95) over the export | {res['sandbox_trend_90d_ms']} ms |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    store_dir = flowhistory_store(a.runs, a.seed)
    stamp = file_stamp()
    work = OUT / "work" / f"{stamp}-sql"
    try:
        res = run(store_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = markdown(res)
    write_results(f"sql-{stamp}", res, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
