"""`flowhistory db ...`: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from analytics.core import migrations
from analytics.core.context import Context
from analytics.core.errors import InvalidInput
from analytics.core.migrations import Migration
from api.cli.common import DbOption, Typer, UsageError, console, error, on_store

_SERVING = "migrations change the schema under it: `flowhistory db current` works while it serves"

app = Typer(help="Schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(
    typer_ctx: typer.Context,
    db: DbOption = None,
    to: Annotated[int | None, typer.Option(min=0, help="Target version (0 to head)")] = None,
) -> None:
    """Apply migrations up to head (or --to); the server must be stopped."""
    head = migrations.head()
    if to is not None and to > head:  # the library's "unknown version" was exit 1
        raise UsageError(f"--to {to}: there is no such version; head is {head}", typer_ctx)

    def local(ctx: Context) -> tuple[int, list[Migration], int]:
        before = migrations.current(ctx.store)
        return before, migrations.upgrade(ctx.store, to), migrations.current(ctx.store)

    before, applied, current = on_store(
        db,
        local,
        _SERVING,
        migrate=False,
        create=True,  # a new store starts here (or with `serve`)
    )
    if to is not None and to < before:
        # an upgrade never goes down: this printed `current: 12`, exit 0, as if it had done it
        steps = sum(1 for m in migrations.all_migrations() if to < m.version <= before)
        error(
            f"the store is at schema {before}, already past {to}: nothing applied (`flowhistory db "
            f"downgrade --steps {steps}` goes back to it)"
        )
        raise typer.Exit(2)
    for m in applied:
        console.print(f"applied {m.version:04d} {m.name}")
    console.print(f"current: {current}")


@app.command("downgrade")
def db_downgrade(
    db: DbOption = None, steps: Annotated[int, typer.Option(min=1, help="How many to undo")] = 1
) -> None:
    """Undo the newest migration(s); the server must be stopped. Dropping a table drops its data."""

    def local(ctx: Context) -> tuple[list[Migration], int]:
        # a mistyped count (99999999999999999999) undid every migration, dropping every table
        version = migrations.current(ctx.store)
        applied = sum(1 for m in migrations.all_migrations() if m.version <= version)
        if steps > applied:
            raise InvalidInput(
                f"--steps {steps} is more than the {applied} migrations applied; undoing all of them "
                f"drops every table with its data: to do that, give --steps {applied}",
                field="steps",
            )
        return migrations.downgrade(ctx.store, steps), migrations.current(ctx.store)

    reverted, current = on_store(db, local, _SERVING, migrate=False)
    for m in reverted:
        console.print(f"reverted {m.version:04d} {m.name}")
    console.print(f"current: {current}")


@app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema version of the store, and head."""
    # a server migrates its store to its head at start, and says which in /health
    current = on_store(
        db,
        lambda ctx: migrations.current(ctx.store),
        lambda api: api.get("/health")["schema_version"],
        migrate=False,
    )
    console.print(f"current: {current} (head: {migrations.head()})")
