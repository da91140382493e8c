"""A generated store of a few thousand runs over two months and five flows, exported once by
the real exporter, and the daily trend computed on the store itself: what every engine must match."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analytics.access import users
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.exports import run_export
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import ADMIN, SECRET, make_execution

RUNS = 3000
DAYS = 60
START = 1_764_547_200  # 2025-12-01T00:00:00Z

# per UTC day: runs, errors, total ms, min ms, max ms, median ms (interpolated, as every engine's)
TREND_SQL = """
SELECT strftime(created_at, '%Y-%m-%d') AS day, count(*) AS runs,
       count(*) FILTER (WHERE status = 'error') AS errors, sum(execution_time)::BIGINT AS total_ms,
       min(execution_time) AS min_ms, max(execution_time) AS max_ms,
       median(execution_time)::DOUBLE AS p50_ms
FROM executions GROUP BY day ORDER BY day
"""

Row = tuple[str, int, int, int, int, int, float]


@dataclass(frozen=True)
class Export:
    root: Path
    expected: list[Row]  # the trend computed on the store


def generate(settings: Settings) -> list[Row]:
    rng = random.Random(20261130)
    with open_context(settings) as ctx:
        users.create_user(ctx, "admin", role="admin")
        flow_ids = [
            flows.create_flow(ctx, ADMIN, name=f"flow-{i}", nodes=[], edges=[], access_control=None).id
            for i in range(5)
        ]
        runs = [
            make_execution(
                rng.choice(flow_ids),
                status=rng.choices(["success", "error", "aborted"], weights=[80, 15, 5])[0],
                execution_time=rng.randint(5, 60_000),
                # spread over DAYS days, some runs near midnight to catch a time zone slip
                created_at=START + rng.randrange(DAYS * 86_400),
                user_id=rng.choice(["admin", "ana", "bo"]),
            )
            for _ in range(RUNS)
        ]
        stored = ingest.save_executions(ctx, ADMIN, runs)
        assert all(r.status == "stored" for r in stored)
        run_export(ctx)
        return [tuple(r) for r in ctx.store.read(lambda c: c.execute(TREND_SQL).fetchall())]  # type: ignore[misc]


@pytest.fixture(scope="package")
def export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Export]:
    folder = tmp_path_factory.mktemp("engines")
    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key=SECRET, scheduler_enabled=False)
    expected = generate(settings)
    yield Export(settings.data_dir / "exports", expected)
