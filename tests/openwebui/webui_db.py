"""An Open WebUI database for the tests, in SQLite or PostgreSQL, with Open WebUI's own tables.

The DDL follows Open WebUI's SQLAlchemy models as ../shared/OPENWEBUI_SCHEMA.md gives them
(JSON columns are text in SQLite and `json` in PostgreSQL, times are epoch seconds). The helper
writes rows the way Open WebUI would; flowhistory only ever reads this database.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

_TABLES = {
    "user": """
        CREATE TABLE {user} (
            id VARCHAR NOT NULL PRIMARY KEY, name VARCHAR, email VARCHAR, role VARCHAR,
            profile_image_url TEXT, api_key VARCHAR UNIQUE, info {json}, settings {json},
            oauth_sub TEXT UNIQUE, username VARCHAR(50), bio TEXT, gender TEXT, date_of_birth DATE,
            last_active_at BIGINT, updated_at BIGINT, created_at BIGINT)""",
    "group": """
        CREATE TABLE {group} (
            id TEXT NOT NULL PRIMARY KEY, user_id TEXT, name TEXT, description TEXT, data {json},
            meta {json}, permissions {json}, user_ids {json}, created_at BIGINT, updated_at BIGINT)""",
    "flow": """
        CREATE TABLE flow (
            id VARCHAR NOT NULL PRIMARY KEY, user_id VARCHAR, name TEXT, description TEXT,
            nodes {json}, edges {json}, meta {json}, access_control {json},
            created_at BIGINT, updated_at BIGINT)""",
    "flow_execution": """
        CREATE TABLE flow_execution (
            id VARCHAR NOT NULL PRIMARY KEY, flow_id VARCHAR, user_id VARCHAR, status VARCHAR,
            inputs {json}, outputs {json}, node_results {json}, errors {json},
            execution_time BIGINT, created_at BIGINT, meta {json})""",
    # Open WebUI's persistent config: the newest row's `data` wins (e.g. auth.api_key.enable)
    "config": """
        CREATE TABLE config (
            id {serial}, data {json} NOT NULL, version INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP)""",
}
_INDEXES = [
    "CREATE INDEX flow_execution_flow_id_created_at_idx ON flow_execution (flow_id, created_at)",
    "CREATE INDEX flow_execution_user_id_created_at_idx ON flow_execution (user_id, created_at)",
]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class WebUIDb:
    """One Open WebUI database: `sqlite:////path/webui.db` or a PostgreSQL URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            import psycopg

            self._conn: Any = psycopg.connect(url, autocommit=True)
            self._q = {"user": '"user"', "group": '"group"', "json": "JSON", "serial": "SERIAL PRIMARY KEY"}
            self._p = "%s"
        else:
            path = url.removeprefix("sqlite:///")
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._q = {
                "user": '"user"',
                "group": '"group"',
                "json": "JSON",
                "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
            }
            self._p = "?"

    @classmethod
    def sqlite(cls, path: Path) -> WebUIDb:
        return cls(f"sqlite:///{path}")

    def create_schema(self) -> WebUIDb:
        for ddl in _TABLES.values():
            self.execute(ddl.format(**self._q))
        for ddl in _INDEXES:
            self.execute(ddl)
        return self

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(sql.replace("?", self._p), params)
        return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        self._conn.close()

    # -- rows as Open WebUI writes them ------------------------------------------------------
    def add_user(
        self, user_id: str, role: str = "user", *, api_key: str | None = None, name: str | None = None
    ) -> str:
        now = int(time.time())
        self.execute(
            'INSERT INTO "user" (id, name, email, role, api_key, info, settings, last_active_at, updated_at,'
            " created_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
            (user_id, name or user_id, f"{user_id}@example.com", role, api_key, now, now, now),
        )
        return user_id

    def set_role(self, user_id: str, role: str) -> None:
        self.execute(
            'UPDATE "user" SET role = ?, updated_at = ? WHERE id = ?', (role, int(time.time()), user_id)
        )

    def delete_user(self, user_id: str) -> None:
        self.execute('DELETE FROM "user" WHERE id = ?', (user_id,))

    def add_group(self, group_id: str, user_ids: list[str], *, owner: str = "admin") -> str:
        now = int(time.time())
        self.execute(
            'INSERT INTO "group" (id, user_id, name, description, data, meta, permissions, user_ids,'
            " created_at, updated_at) VALUES (?, ?, ?, '', NULL, NULL, NULL, ?, ?, ?)",
            (group_id, owner, group_id, _dump(user_ids), now, now),
        )
        return group_id

    def set_members(self, group_id: str, user_ids: list[str]) -> None:
        self.execute(
            'UPDATE "group" SET user_ids = ?, updated_at = ? WHERE id = ?',
            (_dump(user_ids), int(time.time()), group_id),
        )

    def add_flow(
        self,
        owner: str,
        *,
        flow_id: str | None = None,
        name: str = "flow",
        nodes: list[Any] | None = None,
        edges: list[Any] | None = None,
        access_control: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        created_at: int | None = None,
    ) -> str:
        fid = flow_id or str(uuid.uuid4())
        now = created_at or int(time.time())
        self.execute(
            "INSERT INTO flow (id, user_id, name, description, nodes, edges, meta, access_control, created_at,"
            " updated_at) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                owner,
                name,
                _dump(nodes or []),
                _dump(edges or []),
                _dump(meta if meta is not None else {}),
                _dump(access_control),
                now,
                now,
            ),
        )
        return fid

    def update_flow(self, flow_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = tuple(
            _dump(v) if k in {"nodes", "edges", "meta", "access_control"} else v for k, v in fields.items()
        )
        self.execute(
            f"UPDATE flow SET {sets}, updated_at = ? WHERE id = ?", (*values, int(time.time()), flow_id)
        )

    def save_config(self, data: dict[str, Any]) -> None:
        """Open WebUI saves its whole config as a new row; the newest one is read."""
        self.execute("INSERT INTO config (data, version) VALUES (?, 0)", (_dump(data),))

    def delete_flow(self, flow_id: str) -> None:
        self.execute("DELETE FROM flow WHERE id = ?", (flow_id,))

    def add_execution(
        self,
        flow_id: str,
        user_id: str,
        *,
        execution_id: str | None = None,
        status: str = "success",
        inputs: Any = None,
        outputs: Any = None,
        node_results: Any = None,
        errors: Any = None,
        execution_time: int = 100,
        created_at: int | None = None,
        meta: Any = None,
    ) -> str:
        eid = execution_id or str(uuid.uuid4())
        self.execute(
            "INSERT INTO flow_execution (id, flow_id, user_id, status, inputs, outputs, node_results, errors,"
            " execution_time, created_at, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                eid,
                flow_id,
                user_id,
                status,
                _dump(inputs),
                _dump(outputs),
                _dump(node_results),
                _dump(errors),
                execution_time,
                created_at if created_at is not None else int(time.time()),
                _dump(meta if meta is not None else {}),
            ),
        )
        return eid
