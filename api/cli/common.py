"""What every command module shares: the `--db` option, opening the store, the consoles, and the
Typer subclass that shows flags without a type placeholder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import FlowHistoryError
from analytics.openwebui import sync as openwebui

console = Console()
err = Console(stderr=True)

CLI_ADMIN = "cli"  # the CLI runs as the store's operator: an admin

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Store file (default: FLOWHISTORY_DB_PATH or data/flowhistory.duckdb)"),
]


class _FlagsTakeNoValue:
    """Typer prints a type beside every flag, `--json <bool>` (and `--help <bool>`), as if it
    wanted a value: a flag gets an empty metavar, so help shows the type only where one is due."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsTakeNoValue, TyperCommand):
    pass


class _Group(_FlagsTakeNoValue, TyperGroup):
    pass


class Typer(typer.Typer):
    """A Typer whose groups and commands show flags without a type (see _FlagsTakeNoValue)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def settings_for(db: Path | None) -> Settings:
    """The environment's settings, with `--db` in place of the store path when given."""
    settings = Settings()
    return settings.model_copy(update={"db_path": db}) if db else settings


def fail(exc: FlowHistoryError, code: int) -> NoReturn:
    """Print the library's message (as text, not markup) and exit with `code`."""
    err.print(f"[red]error:[/red] {escape(exc.detail)}")
    raise typer.Exit(code) from exc


@contextmanager
def open_store(db: Path | None, *, migrate: bool = True) -> Iterator[Context]:
    """The store for one command: exit 2 when it cannot be opened (held by a server, say) or,
    in Open WebUI mode, Open WebUI's database cannot be read; exit 1 when the library refuses
    what the command asked."""
    try:
        ctx = open_context(settings_for(db), migrate=migrate)
    except FlowHistoryError as exc:
        fail(exc, 2)
    if migrate and ctx.settings.openwebui_db:  # Open WebUI mode: its users and flows, as the server sees them
        try:
            openwebui.load_once(ctx)
        except FlowHistoryError as exc:
            ctx.close()
            fail(exc, 2)
    try:
        yield ctx
    except FlowHistoryError as exc:
        fail(exc, 1)
    finally:
        ctx.close()
