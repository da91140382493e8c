"""Bulk-load a flowhistory store through its own library: setup, not measured.

Users (and the admin `bench-admin`), flows, then runs via `ingest.save_executions` in chunks
of 20k, as the admin, each run keeping its generated id, created_at and user_id (so both stores
hold the same executions and the harness can ask both for the same ids).

    python -m bench.fh_load --db bench/out/f.duckdb --runs 20000 --seed 42 [--small]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import loading

ADMIN = "bench-admin"


def load(
    db_path: str | Path,
    runs: Iterable[dict[str, Any]],
    flows: Iterable[dict[str, Any]],
    users: Iterable[str],
    *,
    progress: bool = False,
) -> int:
    from analytics.access import users as fh_users
    from analytics.access.permissions import Viewer
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from analytics.flows import registry as fh_flows
    from analytics.history import ingest

    ctx = open_context(Settings(db_path=Path(db_path)))
    try:
        fh_users.create_user(ctx, ADMIN, role="admin")
        for u in users:
            fh_users.create_user(ctx, u, role="user")
        for f in flows:
            fh_flows.create_flow(
                ctx,
                Viewer(f["user_id"], "user"),
                name=f["name"],
                nodes=f["nodes"],
                edges=f["edges"],
                flow_id=f["id"],
                access_control=f["access_control"],
            )
        admin = Viewer(ADMIN, "admin")

        def write(chunk: list[dict[str, Any]]) -> None:
            results = ingest.save_executions(ctx, admin, chunk)
            refused = [r for r in results if r.status != "stored"]
            if refused:
                raise RuntimeError(f"flowhistory refused {len(refused)} runs, first: {refused[0]}")

        return loading.load_chunks(runs, write, label="flowhistory", progress=progress)
    finally:
        ctx.close()


if __name__ == "__main__":
    from bench import generate

    loading.main(__doc__, load, generate.users(), "flowhistory")
