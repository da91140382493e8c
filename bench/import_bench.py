"""How fast does Open WebUI's history move in? `import openwebui` on the benchmark's bodies.

Builds an Open WebUI SQLite database (its own `flow` and `flow_execution` tables) with the
benchmark's flows and runs (bench/generate.py), cached under bench/out/, then times the import
into a fresh store, next to the parse ceiling (`bench.parse_ceiling`: orjson and DuckDB parsing
the same bodies, nothing else) measured in the same run.

    python -m bench.import_bench [--runs 200000] [--pad-kb 0]

`--pad-kb N` adds a node with N KB of text to every run (in `outputs` too, as the editor copies
it): Open WebUI's usual runs are 30-60 KB. The peak RSS of the process is printed beside.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.openwebui import importer
from bench import generate

OUT = Path(__file__).parent / "out"


def build(path: Path, n: int, pad_kb: int = 0) -> None:
    """Open WebUI's tables, filled as Open WebUI writes them (json.dumps text, epoch seconds)."""
    pad = {"output_9_pad": {"content": ("lorem ipsum dolor sit amet " * (pad_kb * 40))[: pad_kb * 1000]}}
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute(
        "CREATE TABLE flow (id VARCHAR PRIMARY KEY, user_id VARCHAR, name TEXT, description TEXT, nodes JSON,"
        " edges JSON, meta JSON, access_control JSON, created_at BIGINT, updated_at BIGINT)"
    )
    con.execute(
        "CREATE TABLE flow_execution (id VARCHAR PRIMARY KEY, flow_id VARCHAR, user_id VARCHAR, status VARCHAR,"
        " inputs JSON, outputs JSON, node_results JSON, errors JSON, execution_time BIGINT, created_at BIGINT,"
        " meta JSON)"
    )
    con.execute(
        'CREATE TABLE "user" (id VARCHAR PRIMARY KEY, name VARCHAR, email VARCHAR, role VARCHAR, created_at BIGINT)'
    )
    con.execute('CREATE TABLE "group" (id TEXT PRIMARY KEY, name TEXT, description TEXT, user_ids JSON)')
    for f in generate.flows(42):
        con.execute(
            "INSERT INTO flow VALUES (?, ?, ?, NULL, ?, ?, '{}', ?, ?, ?)",
            (
                f["id"],
                f["user_id"],
                f["name"],
                json.dumps(f["nodes"]),
                json.dumps(f["edges"]),
                json.dumps(f["access_control"]),
                f["created_at"],
                f["updated_at"],
            ),
        )
    for u in generate.users():
        con.execute('INSERT INTO "user" VALUES (?, ?, NULL, ?, 0)', (u, u, "user"))
    dump = lambda v: None if v is None else json.dumps(v)  # noqa: E731
    runs = generate.generate_runs(n, seed=42)
    while batch := list(itertools.islice(runs, 20_000)):
        con.executemany(
            "INSERT INTO flow_execution VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}')",
            [
                (
                    r["id"],
                    r["flow_id"],
                    r["user_id"],
                    r["status"],
                    dump(r["inputs"]),
                    dump({**(r["outputs"] or {}), **pad} if pad_kb else r["outputs"]),
                    dump({**(r["node_results"] or {}), **pad} if pad_kb else r["node_results"]),
                    dump(r["errors"]),
                    r["execution_time"],
                    int(r["created_at"]),
                )
                for r in batch
            ],
        )
    con.execute("CREATE INDEX flow_execution_flow_id_created_at_idx ON flow_execution (flow_id, created_at)")
    con.commit()
    con.close()
    tmp.rename(path)


def parse_ceiling(n: int) -> tuple[float, float]:
    """runs/s for orjson.loads and DuckDB's read_json_objects on the same bodies (parse only)."""
    runs = list(itertools.islice(generate.generate_runs(n, seed=42), n))
    body = orjson.dumps(runs)
    t = time.perf_counter()
    orjson.loads(body)
    orjson_rate = n / (time.perf_counter() - t)
    folder = Path(tempfile.mkdtemp())
    try:
        (folder / "b.json").write_bytes(body)
        t = time.perf_counter()
        duckdb.connect().execute(
            f"SELECT count(*) FROM read_json_objects('{folder / 'b.json'}', format='array')"
        ).fetchall()
        duck_rate = n / (time.perf_counter() - t)
    finally:
        shutil.rmtree(folder)
    return orjson_rate, duck_rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200_000)
    p.add_argument("--pad-kb", type=int, default=0)
    args = p.parse_args()
    n, pad_kb = args.runs, args.pad_kb
    OUT.mkdir(exist_ok=True)
    source = OUT / (f"webui-{n}.db" if not pad_kb else f"webui-{n}-pad{pad_kb}.db")
    if not source.exists():
        t = time.perf_counter()
        build(source, n, pad_kb)
        print(f"built {source} in {time.perf_counter() - t:.0f} s")
    print(f"{n:,} runs, {source.stat().st_size / 1e9:.2f} GB of SQLite")
    orjson_rate, duck_rate = parse_ceiling(min(n, 20_000))
    folder = Path(tempfile.mkdtemp())
    try:
        ctx = open_context(Settings(db_path=folder / "s.duckdb", checkpoint_threshold="1GB"))
        t = time.perf_counter()
        summary = importer.import_openwebui(ctx, f"sqlite:///{source}")
        seconds = time.perf_counter() - t
        ctx.close()
    finally:
        shutil.rmtree(folder)
    print(
        f"import openwebui                 {summary.runs_stored / seconds:>9,.0f} runs/s "
        f"({summary.runs_stored:,} stored, {summary.runs_skipped:,} skipped, {seconds:.1f} s)"
    )
    print(f"parse ceiling: orjson.loads      {orjson_rate:>9,.0f} runs/s")
    print(f"parse ceiling: DuckDB read_json  {duck_rate:>9,.0f} runs/s")
    print(
        f"peak RSS of the process          {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:>9.2f} GB"
    )


if __name__ == "__main__":
    main()
