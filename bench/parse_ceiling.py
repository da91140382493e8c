"""How fast can a batch of realistic runs even be parsed here? The ceiling for batch ingest.

Batch ingest must at least parse every run's JSON once. This measures that alone, on the
benchmark's own runs (median ~3 KB, character-spread results), with the two parsers at hand:
orjson into Python objects (what validation needs) and DuckDB's C++ JSON reader (a vectorised
path that never builds Python objects), next to the in-process cost of flowhistory's steps.

    python -m bench.parse_ceiling [--runs 20000]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.flows import registry as flows
from analytics.history import ingest
from bench import generate


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>9,.0f} runs/s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20_000)
    n = p.parse_args().runs
    runs = list(itertools.islice(generate.generate_runs(n, seed=42), n))
    body = orjson.dumps(runs)
    print(f"{n:,} runs, {len(body) / 1e6:.1f} MB of JSON ({len(body) / n / 1e3:.1f} KB a run)")

    t = time.perf_counter()
    items = orjson.loads(body)
    print(f"orjson.loads (parse only)            {_rate(n, time.perf_counter() - t)}")

    folder = Path(tempfile.mkdtemp())
    try:
        (folder / "b.json").write_bytes(body)
        con = duckdb.connect()
        t = time.perf_counter()
        con.execute(
            f"SELECT count(*) FROM read_json_objects('{folder / 'b.json'}', format='array')"
        ).fetchall()
        print(f"DuckDB read_json_objects (parse only) {_rate(n, time.perf_counter() - t)}")

        ctx = open_context(Settings(db_path=folder / "s.duckdb", checkpoint_threshold="1GB"))
        admin = Viewer("bench-admin", "admin")
        users.create_user(ctx, "bench-admin", role="admin")
        for f in generate.flows(42):
            flows.create_flow(
                ctx, Viewer(f["user_id"]), name=f["name"], nodes=f["nodes"], edges=f["edges"], flow_id=f["id"]
            )
        t = time.perf_counter()
        forms = [ingest.parse_form(i, ingest.ExecutionImport) for i in items]
        t1 = time.perf_counter()
        staged = [ingest.stage(ctx, admin, f) for f in forms]
        t2 = time.perf_counter()
        ingest.submit(ctx, staged).result()
        t3 = time.perf_counter()
        print(f"pydantic validation                  {_rate(n, t1 - t)}")
        print(f"stage (serialise, node facts, cost)  {_rate(n, t2 - t1)}")
        print(f"commit (one Arrow insert)            {_rate(n, t3 - t2)}")
        ctx.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
