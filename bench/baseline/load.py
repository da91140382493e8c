"""Bulk-load the baseline's SQLite file: setup, not measured.

SQLAlchemy Core `executemany` on the peer's own tables (so JSON is serialised exactly as the
ORM would, with the default `json.dumps`), 20k rows per transaction, synchronous=OFF while
loading; the result is checkpointed so the file holds everything and the WAL is empty.

    python -m bench.baseline.load --db bench/out/b.sqlite --runs 20000 --seed 42 [--small]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench import loading
from bench.baseline.db import Base, make_engine
from bench.baseline.models import Flow, FlowExecution, User


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

        def write(chunk: list[dict[str, Any]]) -> None:
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

        n = loading.load_chunks(runs, write, label="baseline", progress=progress)
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return n


if __name__ == "__main__":
    from bench import generate

    loading.main(__doc__, load, [*generate.users(), ("bench-admin", "admin")], "baseline")
