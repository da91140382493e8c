from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from api.app import create_app
from tests.factories import SECRET, World, build_world
from tests.openwebui.pg_server import PostgresServer, postgres_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    with open_context(settings) as c:
        yield c


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def world(client: TestClient) -> World:
    return build_world(client)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session (Open WebUI mode's tests): started on first use only."""
    with postgres_server() as server:
        yield server
