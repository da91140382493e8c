"""`flowhistory serve`: the server, one process that owns the store."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from api.cli.common import DbOption, open_store, settings_for

# SIGTERM: uvicorn stops accepting and gives requests in flight this long to be answered; the
# lifespan then stops the jobs (SHUTDOWN_JOBS_S), drains the writer's queue and checkpoints.
# Together well inside the 10 s a service manager waits before SIGKILL.
GRACEFUL_S = 3


def _stopped(signum: int, frame: FrameType | None) -> None:
    """After its graceful shutdown uvicorn re-raises the SIGTERM it caught; a stop that went as
    asked exits 0 (before uvicorn runs, it stops the process at once, also with 0)."""
    raise SystemExit(0)


def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
) -> None:
    """Start the server (one process, one worker: it owns the store)."""
    import uvicorn

    from api.app import create_app

    settings = settings_for(db)
    settings = settings.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    with open_store(settings.db_path):  # fail fast and quietly if another process holds the store
        pass
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_S,
    )
