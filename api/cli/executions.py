"""`flowhistory cleanup`: keep the newest runs of a flow."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.text import Text

from analytics.history import runs as history
from api.cli.common import DbOption, console, on_store


def cleanup(
    flow_id: str,
    db: DbOption = None,
    keep: Annotated[int, typer.Option(help="How many of the newest runs to keep")] = 50,
) -> None:
    """Keep only the newest N executions of a flow."""
    deleted = on_store(
        db,
        lambda ctx: history.delete_old_executions_by_flow_id(ctx, flow_id, keep),
        lambda api: api.post(
            f"/api/v1/flows/{quote(flow_id, safe='')}/executions/cleanup", params={"keep": keep}
        )["deleted"],
    )
    console.print(Text(f"deleted {deleted} executions of {flow_id}"))
