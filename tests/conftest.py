"""Fixtures every test may use, and the `slow` marker: what `make test-fast` leaves out.

`slow` is given by rules (path and name), so a new test file gets it the same way: see SLOW_PATHS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from api.app import create_app
from tests.factories import SECRET, World, build_world
from tests.factories.disk import small_disk
from tests.openwebui.pg_server import PostgresServer, postgres_server

__all__ = ["small_disk"]  # a fixture for every folder: a tmpfs of its own

# Every store keeps a disk reserve beside it (64 MiB by default, for admins to delete on a full
# disk): thousands of test stores would take tens of GB. Tests keep 1 MiB; the disk-full tests
# set their own. Subprocess servers get it too (tests/live_server.py).
TEST_DISK_RESERVE = "1MiB"
os.environ.setdefault("FLOWHISTORY_DISK_RESERVE", TEST_DISK_RESERVE)

# pytest-xdist's workers inherit COLUMNS=80 from execnet; rich reads COLUMNS once when the CLI's
# console is created, so the CLI tests' own COLUMNS (given per invocation) would be ignored.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# Browser, other engines, real PostgreSQL, subprocess servers, crash and durability runs, the OpenAPI
# conformance sweep, big oracles and store rebuilds: each worth running, none quick.
SLOW_PATHS = re.compile(
    r"^tests/(e2e|engines|openwebui)/"
    r"|durability|single_owner|conformance|oracle|live_|worker_limits|_s3|notebook|rebuild|restore_and_space"
    r"|keepalive|slow_clients|_live|access_log|egress|webhooks"  # real servers, sockets, timeouts
    r"|alerts/test_evaluate|test_policies_and_pass|test_write_sql|test_export_context"  # big per-test stores
    r"|^tests/api/cli/|test_sql"  # each test runs `flowhistory`, or SQL sandbox workers, as subprocesses
)
# test functions that race threads or processes on purpose
SLOW_NAMES = re.compile(r"racing|concurrent|readers_during|second_process")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m "not slow"`, a file all of whose tests are slow is not even imported (its
    imports, Playwright, Spark, schemathesis' schema, took a fifth of the fast run)."""
    if config.getoption("markexpr", "") != "not slow" or collection_path.suffix != ".py":
        return None
    relative = collection_path.relative_to(config.rootpath).as_posix()
    return True if relative.startswith("tests/") and SLOW_PATHS.search(relative) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` by rule: the SLOW_PATHS files, SLOW_NAMES tests, `engines`-marked tests, and every case of a
    parametrized test after its first (the fast run checks each behaviour once, not its matrix)."""
    slow = pytest.mark.slow
    seen: set[str] = set()
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if SLOW_PATHS.search(path) or SLOW_NAMES.search(item.name) or item.get_closest_marker("engines"):
            item.add_marker(slow)
        elif hasattr(item, "callspec"):
            function = item.nodeid.split("[", 1)[0]
            if function in seen:
                item.add_marker(slow)
            seen.add(function)


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
