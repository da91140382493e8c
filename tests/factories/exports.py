"""Seeding a store with runs on chosen days, and reading an export back with DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from analytics.access import users
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import ADMIN, make_execution


def seed_flow(ctx: Context, name: str = "exported") -> str:
    if ctx.directory.user("admin") is None:
        users.create_user(ctx, "admin", role="admin")
    return flows.create_flow(ctx, ADMIN, name=name, nodes=[], edges=[], access_control=None).id


def add_runs(ctx: Context, flow_id: str, days: list[str], per_day: int, **overrides: Any) -> list[str]:
    """`per_day` runs on each ISO day (imports: any created_at), as the editor sends them."""
    runs = [
        make_execution(
            flow_id,
            user_id="admin",
            created_at=f"{day}T{(i % 24):02d}:{(i * 7) % 60:02d}:00.{i:06d}Z",
            status="error" if i % 5 == 0 else "success",
            execution_time=100 + i,
            **overrides,
        )
        for day in days
        for i in range(per_day)
    ]
    results = ingest.save_executions(ctx, ADMIN, runs)
    assert all(r.status == "stored" for r in results), results
    return [r.id for r in results if r.id]


def read(root: Path, sql: str, table: str = "executions") -> list[tuple[Any, ...]]:
    """`sql` over `t`, the table's files read the way the docs tell readers to."""
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        glob = str(root / table / "*" / "*.parquet")
        conn.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def parquet_files(root: Path, table: str) -> list[Path]:
    return sorted((root / table).glob("*/*.parquet"))
