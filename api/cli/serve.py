"""`flowhistory serve`: the server, one process that owns the store."""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType
from typing import Annotated

import typer

from analytics.core.config import Settings
from api.cli import remote
from api.cli.common import DbOption, error, open_store, settings_for

# exit status of a port `serve` cannot listen on (README, "CLI"): 1, as for any other resource
# the system refuses; a setting that is wrong in itself is 2 (check_environment)
PORT_UNAVAILABLE = 1
_CHOOSE = " (choose another port, or stop what holds it)"


def _stopped(signum: int, frame: FrameType | None) -> None:
    """After its graceful shutdown uvicorn re-raises the SIGTERM it caught; a stop that went as
    asked exits 0 (before uvicorn runs, it stops the process at once, also with 0)."""
    raise SystemExit(0)


def _port_named(typer_ctx: typer.Context, port: int) -> str:
    """How the operator chose the API's port, to name it in an error."""
    source = typer_ctx.get_parameter_source("port")
    if source is not None and source.name == "COMMANDLINE":
        return f"--port {port}"
    if source is not None and source.name == "ENVIRONMENT":
        return f"FLOWHISTORY_PORT={port}"
    return f"FLOWHISTORY_PORT={port} (the default)"


def _metrics_port_refused(settings: Settings, api_port_named: str) -> tuple[str, int] | None:
    """Why FLOWHISTORY_METRICS_PORT cannot be served, and the exit status, or None.

    The metrics server starts inside the app's startup (api/observability/metrics.py): a busy
    port stopped it there with two log lines and exit 3. Checked here first, in one line; the
    check there stays for a port taken in between."""
    from api import server

    port = settings.metrics_port
    if port is None:
        return None
    if port == settings.port:  # Settings refuses it for FLOWHISTORY_PORT; --port can still make it so
        return (
            f"FLOWHISTORY_METRICS_PORT={port} is also the API's port ({api_port_named}): the metrics "
            "need a port of their own",
            2,
        )
    try:
        probe = server.listen(settings.host, port)
    except server.CannotListen as exc:
        return f"FLOWHISTORY_METRICS_PORT={port}: {exc}{_CHOOSE if exc.in_use else ''}", PORT_UNAVAILABLE
    for sock in probe:
        sock.close()
    return None


def serve(
    typer_ctx: typer.Context,
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
    # the ports before the app starts (server.listen): one line, and nothing started
    api_port = _port_named(typer_ctx, settings.port)
    refused = _metrics_port_refused(settings, api_port)
    if refused is not None:
        error(refused[0])
        raise typer.Exit(refused[1])
    try:
        sockets: list[socket.socket] = server.listen(settings.host, settings.port)
    except server.CannotListen as exc:
        error(f"{api_port}: {exc}{_CHOOSE if exc.in_use else ''}")
        raise typer.Exit(PORT_UNAVAILABLE) from None
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
        server.run(create_app(settings), settings, sockets)
    finally:
        remote.remove_server_file(settings)
