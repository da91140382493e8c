"""Engine and sessions as Open WebUI's `open_webui/internal/db.py` makes them for SQLite.

`check_same_thread=False`, WAL (`DATABASE_ENABLE_SQLITE_WAL`) and synchronous=NORMAL set on
every new connection, the default QueuePool without pre-ping, `expire_on_commit=False`, and a
fresh session per unit of work through the `get_db()` context manager.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, declarative_base, sessionmaker

Base = declarative_base()


def make_engine(path: str) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False}, pool_pre_ping=False
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


engine = make_engine(os.environ.get("BASELINE_DB", "bench/out/baseline.sqlite"))
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine, expire_on_commit=False)


def get_session() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


get_db = contextmanager(get_session)
