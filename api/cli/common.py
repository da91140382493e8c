"""What every command module shares: the `--db` option, opening the store, the consoles, and the
Typer subclass that shows flags without a type placeholder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import FlowHistoryError, StoreLocked
from analytics.openwebui import sync as openwebui
from api.cli import remote as remote_api
from api.cli.remote import Remote, RemoteError

T = TypeVar("T")

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

    def command(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
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


def _open_context(settings: Settings, *, migrate: bool) -> Context:
    """The store, and in Open WebUI mode its users and flows as the server sees them (one sync)."""
    ctx = open_context(settings, migrate=migrate)
    if migrate and settings.openwebui_db:
        try:
            openwebui.load_once(ctx)
        except BaseException:
            ctx.close()
            raise
    return ctx


@contextmanager
def open_store(db: Path | None, *, migrate: bool = True) -> Iterator[Context]:
    """The store for one command: exit 2 when it cannot be opened (held by a server, say) or,
    in Open WebUI mode, Open WebUI's database cannot be read; exit 1 when the library refuses
    what the command asked."""
    try:
        ctx = _open_context(settings_for(db), migrate=migrate)
    except FlowHistoryError as exc:
        fail(exc, 2)
    try:
        yield ctx
    except FlowHistoryError as exc:
        fail(exc, 1)
    finally:
        ctx.close()


def fail_remote(exc: RemoteError) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1) from exc


def refuse_while_serving(settings: Settings, why: str) -> NoReturn:
    """One line for a command the API has no counterpart for, and exit 1."""
    err.print(
        f"[red]error:[/red] the server at {escape(remote_api.server_url(settings))} holds the store; "
        f"stop it first ({escape(why)})"
    )
    raise typer.Exit(1)


def on_store(
    db: Path | None,
    local: Callable[[Context], T],
    remote: Callable[[Remote], T] | str,
    *,
    migrate: bool = True,
) -> T:
    """Run `local` on the store, or, when a server holds it, `remote` on that server's API.

    Both answer the same shape (the API's JSON) for one printer to show. `remote` as a string
    says why the command cannot go through the API: it is then refused with that reason.
    """
    settings = settings_for(db)
    try:
        ctx = _open_context(settings, migrate=migrate)
    except StoreLocked:
        if isinstance(remote, str):
            refuse_while_serving(settings, remote)
        try:
            with remote_api.connect(settings) as api:
                return remote(api)
        except RemoteError as exc:
            fail_remote(exc)
    except FlowHistoryError as exc:
        fail(exc, 2)
    try:
        return local(ctx)
    except FlowHistoryError as exc:
        fail(exc, 1)
    finally:
        ctx.close()


def json_of(model: type[BaseModel], value: Any) -> Any:
    """A library object as the API answers it (its response model's JSON), so one printer
    serves both the local and the remote path."""
    return model.model_validate(value).model_dump(mode="json")
