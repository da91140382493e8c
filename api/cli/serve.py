"""`flowhistory serve`: the server, one process that owns the store."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli import remote
from api.cli.common import DbOption, open_store, settings_for


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
    remote.write_server_file(settings)  # where CLI commands find this server while it holds the store
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_level="warning")
    finally:
        remote.remove_server_file(settings)
