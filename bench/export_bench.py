"""The export phase (issue 4): full export, one day's incremental export, compaction of a
partition, export size against the raw JSON, and a 90-day daily trend over the export with
DuckDB against the same over the live store.

    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.export_bench            # 1M runs
    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.export_bench --runs 20000

Works on a copy of the cached flowhistory store (bench/stores.py builds it if missing), in this
process through the library (no server: the export is a library call the server schedules).
The copy and the export are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import duckdb

from analytics.core.clock import file_stamp
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.exports import compact, run_export
from analytics.exports.targets import open_target
from bench.common import OUT, log, write_results
from bench.stores import copy_store, flowhistory_store

TREND_REPEATS = 7

# a run as the client sends it (outputs included even when the store shares node_results' copy)
RAW_JSON = """
SELECT sum(strlen(json_object(
    'id', id, 'flow_id', flow_id, 'user_id', user_id, 'status', status,
    'execution_time', execution_time, 'created_at', epoch(created_at),
    'inputs', inputs, 'outputs', CASE WHEN outputs_same THEN node_results ELSE outputs END,
    'node_results', node_results, 'errors', errors, 'meta', meta)::VARCHAR))
FROM executions AS e
"""

TREND = """
SELECT CAST(created_at AS DATE) AS day, count(*) AS runs,
       quantile_cont(execution_time, 0.5) AS p50, quantile_cont(execution_time, 0.95) AS p95
FROM {source}
WHERE created_at >= {start} AND created_at < {end} {flow}
GROUP BY day ORDER BY day
"""


def _median_ms(fn: Any, repeats: int = TREND_REPEATS) -> tuple[float, Any]:
    fn()  # warm
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2), result


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.parquet") if p.is_file() and not p.is_symlink())


def _trends(ctx: Context, root: Path) -> dict[str, Any]:
    """The same 90-day daily trend (all runs, and the biggest flow) over the store and the export."""
    span = ctx.store.read(
        lambda c: c.execute(
            "SELECT max(created_at)::DATE + 1, (SELECT flow_id FROM executions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
            " FROM executions"
        ).fetchone()
    )
    end_day, big = span
    start = f"TIMESTAMP '{end_day}' - INTERVAL 90 DAY"
    end = f"TIMESTAMP '{end_day}'"
    glob = str(root / "executions" / "*" / "*.parquet")
    export = duckdb.connect()
    export.execute("SET TimeZone = 'UTC'")
    # created_at in the export is a UTC instant; the view gives the store's naive UTC back
    export.execute(
        f"CREATE VIEW executions AS SELECT * REPLACE (timezone('UTC', created_at) AS created_at)"
        f" FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    out: dict[str, Any] = {"biggest_flow": big}
    for label, flow in (("all flows", ""), ("biggest flow", f"AND flow_id = '{big}'")):
        sql = TREND.format(source="executions", start=start, end=end, flow=flow)
        live_ms, live = _median_ms(lambda sql=sql: ctx.store.read(lambda c: c.execute(sql).fetchall()))
        exp_ms, exp = _median_ms(lambda sql=sql: export.execute(sql).fetchall())
        out[label] = {
            "live_store_ms": live_ms,
            "export_ms": exp_ms,
            "days": len(live),
            "identical": live == exp,
        }
        log(f"  90-day trend, {label}: live store {live_ms} ms, export {exp_ms} ms, identical: {live == exp}")
    export.close()
    return out


def phase_export(store_dir: Path, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    db = copy_store(store_dir, "flowhistory.duckdb", work)
    log(f"export: copied the store in {time.perf_counter() - t:.0f} s")
    root = work / "exports"
    res: dict[str, Any] = {}
    settings = Settings(db_path=db, export_url=str(root), export_max_files_per_partition=1, export_grace_s=0)
    with open_context(settings) as ctx:
        runs, raw = ctx.store.read(
            lambda c: c.execute(f"SELECT count(*), ({RAW_JSON}) FROM executions").fetchone()
        )
        # bytes as UTF-8: strlen counts bytes
        res["runs"], res["raw_json_bytes"] = runs, int(raw)
        res["store_bytes"] = db.stat().st_size

        t = time.perf_counter()
        full = run_export(ctx)
        seconds = time.perf_counter() - t
        size = _dir_bytes(root)
        res["full"] = {
            "seconds": round(seconds, 2),
            "runs_per_s": round(runs / seconds),
            "export_mb_per_s": round(size / seconds / 1e6, 1),
            "raw_json_mb_per_s": round(raw / seconds / 1e6, 1),
            "export_bytes": size,
            "tables": full["tables"],
        }
        log(
            f"  full export: {runs:,} runs in {seconds:.1f} s = {runs / seconds:,.0f} runs/s, "
            f"{size / seconds / 1e6:.0f} MB/s written ({raw / seconds / 1e6:.0f} MB/s of raw JSON)"
        )
        res["size"] = {
            "export_mb": round(size / 1e6, 1),
            "executions_mb": round(full["tables"]["executions"]["bytes"] / 1e6, 1),
            "execution_nodes_mb": round(full["tables"]["execution_nodes"]["bytes"] / 1e6, 1),
            "raw_json_mb": round(raw / 1e6, 1),
            "store_mb": round(res["store_bytes"] / 1e6, 1),
            "export_over_raw_json": round(size / raw, 3),
        }
        log(
            f"  size: export {size / 1e6:,.0f} MB, raw JSON {raw / 1e6:,.0f} MB ({size / raw:.1%}), "
            f"store {res['store_bytes'] / 1e6:,.0f} MB"
        )

        t = time.perf_counter()
        run_export(ctx)
        res["unchanged_cycle_s"] = round(time.perf_counter() - t, 2)
        log(f"  a cycle with nothing new: {res['unchanged_cycle_s']} s")

        # one day's worth of new runs (copies of the last day's, new ids, same day): appended
        last_day = ctx.store.read(
            lambda c: c.execute("SELECT max(created_at)::DATE FROM executions").fetchone()[0]
        )
        added = ctx.store.write(
            lambda c: c.execute(
                "INSERT INTO executions SELECT * REPLACE (uuid() AS id, created_at + INTERVAL 1 MICROSECOND AS created_at)"
                " FROM executions WHERE created_at::DATE = ? RETURNING 1",
                [last_day],
            ).fetchall()
        )
        t = time.perf_counter()
        inc = run_export(ctx)
        seconds = time.perf_counter() - t
        res["incremental_day"] = {
            "runs": len(added),
            "seconds": round(seconds, 2),
            "days_appended": inc["days_appended"],
        }
        log(f"  incremental: {len(added):,} new runs of one day in {seconds:.2f} s")

        # that day's partitions now hold two files: compact them (max one file a partition)
        t = time.perf_counter()
        comp = compact(ctx)
        seconds = time.perf_counter() - t
        res["compaction"] = {
            "seconds": round(seconds, 2),
            "partitions": comp["partitions_compacted"],
            "runs_in_partition": 2 * len(added),
        }
        log(f"  compaction of one day ({2 * len(added):,} runs, both tables): {seconds:.2f} s")

        # a deleted run rewrites its day
        ctx.store.write(
            lambda c: c.execute(
                "DELETE FROM executions WHERE id = (SELECT id FROM executions WHERE created_at::DATE = ? LIMIT 1)",
                [last_day],
            )
        )
        t = time.perf_counter()
        run_export(ctx)
        res["rewrite_day_after_delete_s"] = round(time.perf_counter() - t, 2)
        log(f"  a run deleted: its day rewritten in {res['rewrite_day_after_delete_s']} s")

        res["trend"] = _trends(ctx, Path(open_target(settings).root))
    return res


def markdown(res: dict[str, Any]) -> str:
    f, s, t = res["full"], res["size"], res["trend"]
    lines = [
        f"| operation ({res['runs']:,} runs) | result | target |",
        "|---|---|---|",
        f"| full export | {f['seconds']} s: **{f['runs_per_s']:,} runs/s**, {f['export_mb_per_s']} MB/s written "
        f"({f['raw_json_mb_per_s']} MB/s of raw JSON) | ≥ 150,000 runs/s: {'yes' if f['runs_per_s'] >= 150_000 else 'no'} |",
        f"| cycle with nothing new | {res['unchanged_cycle_s']} s | |",
        f"| incremental, one day ({res['incremental_day']['runs']:,} new runs) | {res['incremental_day']['seconds']} s | |",
        f"| compaction of one day's partitions ({res['compaction']['runs_in_partition']:,} runs, 2 files → 1, both tables) "
        f"| {res['compaction']['seconds']} s | |",
        f"| a deleted run: its day rewritten | {res['rewrite_day_after_delete_s']} s | |",
        f"| export size | {s['export_mb']:,} MB (executions {s['executions_mb']:,}, nodes {s['execution_nodes_mb']:,}) "
        f"= {s['export_over_raw_json']:.1%} of the raw JSON ({s['raw_json_mb']:,} MB); store file {s['store_mb']:,} MB | |",
    ]
    for label in ("all flows", "biggest flow"):
        x = t[label]
        lines.append(
            f"| 90-day daily trend (runs, p50, p95), {label} | export {x['export_ms']} ms, live store "
            f"{x['live_store_ms']} ms; identical: {'yes' if x['identical'] else 'NO'} | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--keep", action="store_true", help="keep the store copy and the export")
    a = p.parse_args(argv)
    store_dir = flowhistory_store(a.runs, a.seed)
    stamp = file_stamp()
    work = OUT / "work" / f"{stamp}-export"
    try:
        res = phase_export(store_dir, work)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    md = markdown(res)
    write_results(f"export-{stamp}", res, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
