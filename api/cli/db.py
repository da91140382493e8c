"""`flowhistory db ...`: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from analytics.core import migrations
from api.cli.common import DbOption, Typer, console, open_store

app = Typer(help="Schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(
    db: DbOption = None, to: Annotated[int | None, typer.Option(help="Target version")] = None
) -> None:
    """Apply migrations up to head (or --to)."""
    with open_store(db, migrate=False) as ctx:
        applied = migrations.upgrade(ctx.store, to)
        for m in applied:
            console.print(f"applied {m.version:04d} {m.name}")
        console.print(f"current: {migrations.current(ctx.store)}")


@app.command("downgrade")
def db_downgrade(
    db: DbOption = None, steps: Annotated[int, typer.Option(help="How many to undo")] = 1
) -> None:
    """Undo the newest migration(s). Dropping a table drops its data."""
    with open_store(db, migrate=False) as ctx:
        for m in migrations.downgrade(ctx.store, steps):
            console.print(f"reverted {m.version:04d} {m.name}")
        console.print(f"current: {migrations.current(ctx.store)}")


@app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema version of the store, and head."""
    with open_store(db, migrate=False) as ctx:
        console.print(f"current: {migrations.current(ctx.store)} (head: {migrations.head()})")
