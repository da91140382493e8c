"""A real PostgreSQL from Debian's packages, started for the tests on a free loopback port.

postgres refuses to run as root, so as root the cluster belongs to the `postgres` system user
(created by Debian's package); otherwise to the current user. The data directory is temporary
and the server is stopped (fast mode) when the fixture ends. `make test` installs the package
when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.live_server import free_port

START_TIMEOUT = 60.0


def pg_bin() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server not installed: `make test` installs Debian's postgresql")
    return found[-1].parent


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    dbname: str

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    owner = "postgres" if os.geteuid() == 0 else None
    user = owner or os.environ.get("USER") or "postgres"
    bindir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="fh-pg-"))
    data = root / "data"
    if owner:
        shutil.chown(root, owner)
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        _as_owner([str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"], owner),
        check=True,
        capture_output=True,
        env=env,
    )
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    log = root / "server.log"
    subprocess.run(
        _as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            owner,
        ),
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        server = PostgresServer("127.0.0.1", port, user, "postgres")
        _wait_ready(server)
        yield server
    finally:
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner),
            capture_output=True,
            env=env,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_database(server: PostgresServer, name: str) -> str:
    """A fresh database on the server; returns its URL."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)
