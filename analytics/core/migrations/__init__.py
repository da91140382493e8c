"""Versioned schema migrations: upgrade, downgrade and current, like `alembic` in the seed.

Each migration is a module `vNNNN_<name>.py` with `UPGRADE` and `DOWNGRADE` lists of SQL
statements. Each runs in its own transaction on the writer, and records itself in
`schema_migrations`, so a crash mid-way leaves the store at the previous version.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import partial
from types import ModuleType

from analytics.core.errors import InvalidInput
from analytics.core.store import Connection, Store, one_row

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    upgrade: tuple[str, ...]
    downgrade: tuple[str, ...]


def _load(module: ModuleType) -> Migration:
    stem = module.__name__.rsplit(".", 1)[-1]
    version = int(stem[1:5])
    return Migration(version, stem[6:], tuple(module.UPGRADE), tuple(module.DOWNGRADE))


def all_migrations() -> list[Migration]:
    found = [
        _load(importlib.import_module(f"{__name__}.{info.name}"))
        for info in pkgutil.iter_modules(__path__)
        if info.name.startswith("v") and info.name[1:5].isdigit()
    ]
    return sorted(found, key=lambda m: m.version)


def head() -> int:
    return all_migrations()[-1].version


def _current(conn: Connection) -> int:
    conn.execute(_LEDGER)
    row = one_row(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations"))
    return int(row[0]) if row else 0


def version(conn: Connection) -> int:
    """The schema version, read-only: 0 for a store no migration has touched."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0])


def current(store: Store) -> int:
    return int(store.write(_current))


def upgrade(store: Store, target: int | None = None) -> list[Migration]:
    """Apply every migration above the current version up to `target` (default: head)."""
    goal = head() if target is None else target
    if goal > head() or goal < 0:
        raise InvalidInput(f"unknown version {goal}; head is {head()}", field="target")
    applied: list[Migration] = []
    for m in all_migrations():
        if m.version > current(store) and m.version <= goal:
            store.write(partial(_step, statements=m.upgrade, m=m, up=True))
            applied.append(m)
    return applied


def downgrade(store: Store, steps: int = 1) -> list[Migration]:
    """Undo the newest `steps` migrations (the seed's `downgrade -1` is steps=1)."""
    if steps < 1:
        raise InvalidInput("steps must be at least 1", field="steps")
    undone: list[Migration] = []
    for m in reversed(all_migrations()):
        if len(undone) == steps:
            break
        if m.version <= current(store):
            store.write(partial(_step, statements=m.downgrade, m=m, up=False))
            undone.append(m)
    return undone


def _step(conn: Connection, statements: tuple[str, ...], m: Migration, *, up: bool) -> None:
    for sql in statements:
        conn.execute(sql)
    if up:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [m.version, m.name])
    else:
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", [m.version])
