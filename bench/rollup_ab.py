"""Side by side: the rollup trend path of another commit against this checkout's, in one process.

Loads `--runs` small runs (bench.generate, seed 42, through `bench.fh_load`: setup, cached in
`bench/out/rollup-ab-<runs>/`), builds the rollups, then asks the 90-day daily trend of the
biggest flow (the harness's query: runs, failure rate, p50, p95) through `analytics.trends.metrics`
of both versions, alternating call by call (order swapped every round), and prints p50 / p99
per version and their ratio. The old version's trends.py and rollups.py are read with
`git show <ref>:...` and loaded as separate modules over the same store and Context; every
other module is this checkout's. Both answers are checked equal and from the rollups first.

    python -m bench.rollup_ab --runs 250000 --calls 200 [--ref main]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from analytics.core.clock import from_epoch_seconds
from bench import fh_load, generate
from bench.common import OUT, ROOT, log


def _old_module(ref: str, path: str, name: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    module = types.ModuleType(name)
    module.__file__ = f"{ref}:{path}"
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    exec(compile(source.stdout, module.__file__, "exec"), module.__dict__)
    return module


def _store(runs: int, seed: int) -> Path:
    d = OUT / f"rollup-ab-{runs}-{seed}"
    db = d / "flowhistory.duckdb"
    if not (d / "done").exists():
        d.mkdir(parents=True, exist_ok=True)
        db.unlink(missing_ok=True)
        t = time.perf_counter()
        log(f"loading {runs:,} small runs into {db}")
        fh_load.load(
            db,
            generate.generate_runs(runs, seed=seed, small=True),
            generate.flows(seed, True),
            generate.users(),
            progress=True,
        )
        (d / "done").write_text(f"{time.perf_counter() - t:.0f} s\n")
        log(f"loaded in {time.perf_counter() - t:.0f} s")
    return db


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=250_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument(
        "--ref",
        default="main",
        help="the commit whose rollup trend path is 'old' (one with the analytics/trends/ package)",
    )
    a = p.parse_args()

    from analytics.access.permissions import Viewer
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from analytics.trends import metrics as trends
    from analytics.trends import rollups

    old_rollups = _old_module(a.ref, "analytics/trends/rollups.py", "old_rollups")
    old_trends = _old_module(a.ref, "analytics/trends/metrics.py", "old_trends")
    old_trends.rollups = old_rollups  # type: ignore[attr-defined]

    db = _store(a.runs, a.seed)
    ctx = open_context(Settings(db_path=db))
    try:
        log(f"rollups: {rollups.refresh(ctx)}")
        big = generate.biggest_flow_id(a.seed, True)
        admin = Viewer(fh_load.ADMIN, "admin")
        end = from_epoch_seconds(generate.data_end())
        today = datetime.combine(ctx.rollup_state.until, datetime.min.time())
        for label, stop in (("90 days to the data's end (the harness's)", end), ("90 days to today", today)):
            body = {
                "measures": ["runs", "failure_rate", "p50_duration", "p95_duration"],
                "start": stop - timedelta(days=90),
                "end": stop,
                "bucket": "day",
            }
            new_q = trends.MetricsQuery.model_validate(body)
            old_q = old_trends.MetricsQuery.model_validate(body)
            calls: dict[str, Callable[[], object]] = {
                "old": lambda q=old_q: old_trends.flow_trend(ctx, admin, big, q),
                "new": lambda q=new_q: trends.flow_trend(ctx, admin, big, q),
            }
            answers = {k: f() for k, f in calls.items()}
            assert all(r.percentiles_approximate for r in answers.values()), "not the rollup path"  # type: ignore[attr-defined]
            rows = {k: r.rows.to_pylist() for k, r in answers.items()}  # type: ignore[attr-defined]
            assert rows["old"] == rows["new"], "the two versions disagree on this range"
            for _ in range(20):  # warm-up
                for f in calls.values():
                    f()
            times: dict[str, list[float]] = {"old": [], "new": []}
            for i in range(a.calls):
                for k in ("old", "new") if i % 2 else ("new", "old"):
                    t = time.perf_counter_ns()
                    calls[k]()
                    times[k].append((time.perf_counter_ns() - t) / 1e6)
            p50 = {k: statistics.median(v) for k, v in times.items()}
            p99 = {k: _pct(v, 0.99) for k, v in times.items()}
            print(
                f"{label}, biggest flow ({sum(r['runs'] for r in rows['new']):,} runs), {a.calls} calls each:"
                f" old ({a.ref}) p50 {p50['old']:.2f} / p99 {p99['old']:.2f} ms;"
                f" new p50 {p50['new']:.2f} / p99 {p99['new']:.2f} ms;"
                f" new/old p50 {p50['new'] / p50['old']:.3f}, p99 {p99['new'] / p99['old']:.3f}",
                flush=True,
            )
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
