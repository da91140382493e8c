"""Retention benchmark: one pass deleting 90 % of a store's runs (time per stage, file size before
and after), with the archive on or off.

It works on a COPY of a flowhistory store (by default the cached 1M-run store of `make bench`;
the cached original is never opened), sets a global max age that leaves the newest 10 % of runs,
runs the pass, then its compaction as the scheduler would (timed apart: the in-place rewrite, then
the online file swap), then, with the store closed, the offline compaction (a fresh copy of the
store: the smallest file the remaining runs need). Wrap it in the shared lock:

    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.retention_bench [--store PATH] [--no-archive]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.retention import apply, policies, reclaim_space
from analytics.retention.policies import Policy

CACHE = Path(__file__).parent / "out" / "cache"


def default_store() -> Path:
    found = sorted(CACHE.glob("r1000000-*/flowhistory-*/flowhistory.duckdb"), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit("no cached 1M store: run `make bench` once, or pass --store")
    return found[-1]


class ReadProbe:
    """A thread reading a small table in a loop, as the API does, timing the slowest read."""

    def __init__(self, ctx: Context) -> None:
        self.ctx, self.count, self.errors, self.max_ms = ctx, 0, 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                self.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM flows").fetchall())
            except Exception:
                self.errors += 1
            self.max_ms = max(self.max_ms, round((time.perf_counter() - t) * 1e3, 1))
            self.count += 1
            self._stop.wait(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=None, help="a flowhistory store to copy (never modified)")
    ap.add_argument("--keep", type=float, default=0.10, help="share of runs to keep (newest)")
    ap.add_argument("--no-archive", action="store_true", help="delete without writing the Parquet archive")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "out" / "work")
    args = ap.parse_args()

    src = args.store or default_store()
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="retention-", dir=args.work))
    db = work / "flowhistory.duckdb"
    try:
        t = time.monotonic()
        shutil.copyfile(src, db)
        print(f"copied {src} ({db.stat().st_size / 1e6:,.0f} MB) in {time.monotonic() - t:.1f}s", flush=True)
        settings = Settings(db_path=db, archive_dir=work / "archive", seed_prices=False)
        with open_context(settings) as ctx:
            ctx.store.read(lambda c: c.execute("CHECKPOINT").fetchall())  # migrations' WAL into the file
            runs, end, cutoff = ctx.store.read(
                lambda c: c.execute(
                    "SELECT count(*), max(created_at), quantile_disc(created_at, ?) FROM executions",
                    [1 - args.keep],
                ).fetchall()
            )[0]
            max_age = (end - cutoff) / timedelta(days=1)
            policies.set_policy(
                ctx, Viewer("bench", "admin"), Policy(max_age_days=max_age, archive=not args.no_archive)
            )
            stages: dict[str, float] = {}
            marks: dict[str, float] = {}

            def progress(stage: str, done: int, total: int) -> None:
                now = time.monotonic()
                if stage not in marks:
                    marks[stage] = now
                stages[stage] = now - marks[stage]

            t = time.monotonic()
            out: dict[str, Any] = apply.run_retention(
                ctx, now=end, progress=progress, trigger="bench", compact=False
            )
            pass_bytes = reclaim_space.store_bytes(db)
            reads = ReadProbe(ctx)  # how long a reader waits at most while the file is swapped
            done = reclaim_space.compact(ctx)  # what run_retention runs next when it deleted enough
            reads.stop()
            wall = time.monotonic() - t
            stages["compact: rewrite sorted + checkpoint"] = done.seconds - done.rebuild_seconds
            stages["compact: online file swap"] = done.rebuild_seconds
            after_runs = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall())[0][
                0
            ]
        closed_bytes = reclaim_space.store_bytes(db)
        offline = reclaim_space.compact_offline(db)  # what a fresh file needs: the floor
        archive_bytes = sum(f.stat().st_size for f in (work / "archive").rglob("*.parquet"))
        result = {
            "store": str(src),
            "runs_before": runs,
            "runs_after": after_runs,
            "deleted": out["deleted"],
            "archived": out["archived"],
            "seconds_total": round(wall, 2),
            "seconds_by_stage": {k: round(v, 2) for k, v in stages.items()},
            "compaction": {
                "rows": done.rows,
                "checkpointed": done.checkpointed,
                "rebuilt": done.rebuilt,
                "reads_held_back_s": done.paused_seconds,
            },
            "reads_during_compaction": {"count": reads.count, "errors": reads.errors, "max_ms": reads.max_ms},
            "mb_before": round(out["bytes_before"] / 1e6, 1),
            "mb_after_delete": round(pass_bytes / 1e6, 1),
            "mb_after": round(done.bytes_after / 1e6, 1),
            "mb_after_close": round(closed_bytes / 1e6, 1),
            "offline_compaction": {
                "seconds": offline.seconds,
                "mb_after": round(offline.bytes_after / 1e6, 1),
            },
            "archive_mb": round(archive_bytes / 1e6, 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
