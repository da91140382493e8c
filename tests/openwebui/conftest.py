"""Open WebUI databases for the tests: a SQLite file, and one on the session's real PostgreSQL
(the `postgres` fixture, in tests/conftest.py: the access matrix uses it too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openwebui.pg_server import PostgresServer, create_database
from tests.openwebui.webui_db import WebUIDb


@pytest.fixture(params=["sqlite", "postgresql"])
def webui_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebUIDb]:
    """An empty Open WebUI database with its schema, in each dialect."""
    if request.param == "sqlite":
        db = WebUIDb.sqlite(tmp_path / "webui.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        db = WebUIDb(create_database(server, f"webui_{uuid.uuid4().hex[:12]}"))
    db.create_schema()
    try:
        yield db
    finally:
        db.close()
