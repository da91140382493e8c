"""`flowhistory cleanup`: keep the newest runs of a flow."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.text import Text

from analytics.history import runs as history
from api.cli.common import DbOption, console, on_store
from api.cli.remote import Remote, RemoteError


def _unknown_flow(flow_id: str) -> str:
    """The library's words for a flow id that names no flow (runs.delete_old_executions_by_flow_id),
    so that a running server's 404 reads as a stopped store's refusal."""
    return f"unknown flow {flow_id}: no flow has this id; nothing deleted"


def cleanup(
    flow_id: str,
    db: DbOption = None,
    # 0 or more, refused by typer (exit 2, naming --keep) as the library refused `keep_count` (exit 1)
    keep: Annotated[int, typer.Option(min=0, help="How many of the newest runs to keep")] = 50,
) -> None:
    """Keep only the newest N executions of a flow."""

    def remote(api: Remote) -> int:
        try:
            answer = api.post(
                f"/api/v1/flows/{quote(flow_id, safe='')}/executions/cleanup", params={"keep": keep}
            )
        except RemoteError as exc:
            # the route's "Flow not found", or the router's "Not Found" for an id no route can
            # hold (a `/` in it): printed the server's words and status, not a stopped store's
            if exc.status == 404:
                raise RemoteError(_unknown_flow(flow_id), 404) from exc
            raise
        return int(answer["deleted"])

    deleted = on_store(db, lambda ctx: history.delete_old_executions_by_flow_id(ctx, flow_id, keep), remote)
    console.print(Text(f"deleted {deleted} executions of {flow_id}"))
