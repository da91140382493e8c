"""One seeded world, exported by the real exporter, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.exports import run_export
from api.app import create_app
from tests.factories import SECRET, World, build_world, save_run

DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Exported:
    world: World
    root: Path  # the export folder
    runs: int  # runs saved (all exported)


def seed(w: World) -> int:
    """Runs by four users over ten days in the three flows, one in five an error."""
    count = 0
    for i in range(60):
        flow = (w.shared, w.public, w.private)[i % 3]
        user = ("owner", "reader", "writer", "grouped")[i % 4]
        status = "error" if i % 5 == 1 else "success"
        save_run(
            w,
            flow,
            user,
            status=status,
            execution_time=100 + i,
            created_at=START + (i % 10) * DAY + i * 60,
            errors={"message": "boom"} if status == "error" else None,
        )
        count += 1
    return count


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    folder = tmp_path_factory.mktemp("sql")
    settings = Settings(
        db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=0, scheduler_enabled=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        w = build_world(client)
        runs = seed(w)
        run_export(w.ctx)
        yield Exported(w, settings.data_dir / "exports", runs)
