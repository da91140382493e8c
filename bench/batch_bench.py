"""How fast does the batch endpoint take backfills? NDJSON over uvicorn (`flowhistory serve`).

The store is seeded with the benchmark's users and flows, the server started on it, then the
benchmark's run bodies (bench/generate.py, ids and times included) are POSTed as NDJSON batches
of `--batch` runs, one after another on each of `--clients` connections (a backfill tool with
that many workers); runs/s counts the stored runs over the wall time of the POSTs, next to the
parse ceiling measured in the same run.

    python -m bench.batch_bench [--runs 50000] [--batch 5000] [--clients 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from analytics.access import users
from analytics.access.auth import create_token
from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.flows import registry as flows
from bench import generate
from bench.import_bench import parse_ceiling
from bench.openwebui_mode import SECRET, serve, stop


def ndjson_bodies(n: int, batch: int) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The benchmark's first `n` runs, and as NDJSON bodies of `batch` runs."""
    runs = list(itertools.islice(generate.generate_runs(n, seed=42), n))
    bodies = [b"\n".join(orjson.dumps(r) for r in runs[i : i + batch]) for i in range(0, n, batch)]
    return runs, bodies


def server_cpu(pid: int) -> float:
    """Seconds of CPU the server process has used (all its threads): steadier than runs/s on a
    shared machine, where other tenants' load moves the wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed(ctx: Context) -> None:
    """The benchmark's users (and `bench-admin`) and flows, for its runs to be posted to."""
    users.create_user(ctx, "bench-admin", role="admin")
    for u in generate.users():
        users.create_user(ctx, u)
    for f in generate.flows(42):
        flows.create_flow(
            ctx, Viewer(f["user_id"]), name=f["name"], nodes=f["nodes"], edges=f["edges"], flow_id=f["id"]
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=5_000)  # ~24 MB a request
    p.add_argument("--clients", type=int, default=1)
    args = p.parse_args()
    runs, bodies = ndjson_bodies(args.runs, args.batch)
    folder = Path(tempfile.mkdtemp())
    try:
        db = folder / "store.duckdb"
        with open_context(Settings(db_path=db)) as ctx:
            seed(ctx)
        proc, url = serve(db, None)
        try:
            headers = {
                "Authorization": f"Bearer {create_token(SECRET, 'bench-admin')}",
                "Content-Type": "application/x-ndjson",
            }

            def post_all(share: list[bytes]) -> int:
                stored = 0
                with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
                    for body in share:
                        r = client.post("/api/v1/executions/batch", content=body)
                        r.raise_for_status()
                        stored += r.json()["stored"]
                return stored

            shares = [bodies[k :: args.clients] for k in range(args.clients)]
            with ThreadPoolExecutor(args.clients) as pool:
                cpu = server_cpu(proc.pid)
                t = time.perf_counter()
                stored = sum(pool.map(post_all, shares))
                seconds = time.perf_counter() - t
                cpu = server_cpu(proc.pid) - cpu
        finally:
            stop(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    orjson_rate, duck_rate = parse_ceiling(min(args.runs, 20_000))
    print(
        f"POST /executions/batch (NDJSON, {args.batch:,} a batch, {args.clients} client(s))"
        f" {stored / seconds:>9,.0f} runs/s"
        f" ({stored:,} of {len(runs):,} stored, {seconds:.1f} s)"
    )
    print(f"server CPU (user + system)       {cpu / max(stored, 1) * 1e6:>9,.1f} us a run")
    print(f"parse ceiling: orjson.loads      {orjson_rate:>9,.0f} runs/s")
    print(f"parse ceiling: DuckDB read_json  {duck_rate:>9,.0f} runs/s")


if __name__ == "__main__":
    main()
