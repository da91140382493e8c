"""`flowhistory serve`: the server, one process that owns the store."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from api.cli import remote
from api.cli.common import DbOption, open_store, settings_for


def _stopped(signum: int, frame: FrameType | None) -> None:
    """After its graceful shutdown uvicorn re-raises the SIGTERM it caught; a stop that went as
    asked exits 0 (before uvicorn runs, it stops the process at once, also with 0)."""
    raise SystemExit(0)


def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    # 1-65535, checked as the command line (or FLOWHISTORY_PORT) is read: uvicorn would bind the
    # port modulo 65536 while server.json announced the one given; 0 ("any free port") is refused
    # too, as server.json and the start line name the port before it is bound
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, envvar="FLOWHISTORY_PORT", help="Port to bind")
    ] = None,
) -> None:
    """Start the server (one process, one worker: it owns the store)."""
    from api import server
    from api.app import create_app
    from api.observability import configure_logging

    settings = settings_for(db)
    settings = settings.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    with open_store(settings.db_path):  # fail fast and quietly if another process holds the store
        pass
    configure_logging(settings)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        remote.write_server_file(settings)  # where CLI commands find this server while it holds the store
    except OSError as exc:
        # a full disk (or a folder it may not write) is no reason not to serve: reads and deletes
        # work there, and CLI commands then ask the address the settings name
        logging.getLogger("flowhistory").warning(
            "cannot write %s (%s): CLI commands will ask %s:%s", remote.server_file(settings),
            exc.strerror or exc, settings.host, settings.port,
        )  # fmt: skip
    try:
        server.run(create_app(settings), settings)
    finally:
        remote.remove_server_file(settings)
