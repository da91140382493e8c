"""Bulk-load the baseline's SQLite file: setup, not measured.

SQLAlchemy Core `executemany` on the peer's own tables (so JSON is serialised exactly as the
ORM would, with the default `json.dumps`), 20k rows per transaction, synchronous=OFF while
loading; the result is checkpointed so the file holds everything and the WAL is empty.

    python -m bench.baseline.load --db bench/out/b.sqlite --runs 20000 --seed 42 [--small]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.baseline.db import Base, make_engine
from bench.baseline.models import Flow, FlowExecution, User

CHUNK = 20_000


def load(
    db_path: str | Path,
    runs: Iterable[dict[str, Any]],
    flows: Iterable[dict[str, Any]],
    users: Iterable[str | tuple[str, str]],
    *,
    progress: bool = False,
) -> int:
    """Create the tables and insert users (ids, or (id, role)), flows and runs; returns the
    number of runs. Runs carry created_at as epoch seconds (stored as int, as the peer does)."""
    engine = make_engine(str(db_path))
    Base.metadata.create_all(bind=engine)
    cols = FlowExecution.__table__
    n = 0
    t = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("PRAGMA synchronous=OFF"))
        conn.commit()
        user_rows = [
            {"id": u, "role": "user"} if isinstance(u, str) else {"id": u[0], "role": u[1]} for u in users
        ]
        conn.execute(insert(User.__table__), user_rows)
        conn.execute(
            insert(Flow.__table__),
            [
                {
                    k: f[k]
                    for k in (
                        "id",
                        "user_id",
                        "name",
                        "nodes",
                        "edges",
                        "access_control",
                        "created_at",
                        "updated_at",
                    )
                }
                for f in flows
            ],
        )
        conn.commit()
        it = iter(runs)
        while chunk := list(itertools.islice(it, CHUNK)):
            conn.execute(
                insert(cols),
                [
                    {
                        "id": r["id"],
                        "flow_id": r["flow_id"],
                        "user_id": r["user_id"],
                        "status": r["status"],
                        "inputs": r["inputs"],
                        "outputs": r["outputs"],
                        "node_results": r["node_results"],
                        "errors": r["errors"],
                        "execution_time": int(r["execution_time"]),
                        "created_at": int(r["created_at"]),
                        "meta": {},
                    }
                    for r in chunk
                ],
            )
            conn.commit()
            n += len(chunk)
            if progress and n % (CHUNK * 10) == 0:
                rate = n / (time.perf_counter() - t)
                print(f"baseline load: {n:,} runs ({rate:,.0f}/s)", flush=True)
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return n


def main() -> None:
    from bench import generate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--small", action="store_true")
    a = p.parse_args()
    t = time.perf_counter()
    n = load(
        a.db,
        generate.generate_runs(a.runs, seed=a.seed, small=a.small),
        generate.flows(a.seed, a.small),
        [*generate.users(), ("bench-admin", "admin")],
        progress=True,
    )
    print(f"baseline load: {n:,} runs into {a.db} in {time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
