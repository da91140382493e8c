"""What every command module shares: the `--db` option, opening the store, the consoles, one-line
errors, and the Typer subclass that shows flags without a type placeholder and usage errors in
one line."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import TyperException
from typer.models import CommandFunctionType

from analytics.core.config import Settings
from analytics.core.context import Context, open_context
from analytics.core.errors import FlowHistoryError, StoreLocked
from analytics.core.user_ids import CONTROL
from analytics.openwebui import sync as openwebui
from api.cli import remote as remote_api
from api.cli.remote import Remote, RemoteError

T = TypeVar("T")

# in a pipe, rich would fit tables to 80 columns and cut ids short ("01a1821b-0749-…"): there a
# table is as wide as its contents, so what is printed can be copied whole
console = Console() if sys.stdout.isatty() else Console(width=100_000)
# stderr carries errors and one-line notes that scripts parse: never wrapped at the terminal's
# (or, in a pipe, 80 columns') width, whatever its length
err = Console(stderr=True, soft_wrap=True)

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


class UsageError(TyperException):
    """A command line that asks for something contradictory: one line, exit 2 (as a bad value)."""

    exit_code = 2

    def __init__(self, message: str, ctx: typer.Context | None = None) -> None:
        super().__init__(message)
        self.ctx = ctx


class _OneLineUsageErrors:
    """Click's usage errors (a bad value, an unknown option, rules without --set ...) as one line,
    `error: MESSAGE (see `COMMAND --help`)`, exit 2, instead of Typer's boxed panel, which wraps
    a long message over several lines."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        main = super().main  # type: ignore[misc]
        if not standalone_mode:
            return main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            # not standalone: click errors come here; `typer.Exit(n)` comes back as n
            code = main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except TyperException as exc:  # click's (Typer's own copy) and UsageError above
            if type(exc).__name__ != "NoArgsIsHelpError":  # (its help is already printed)
                ctx = getattr(exc, "ctx", None)
                see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                # typer's value checks go through pydantic, whose messages start "Value error, "
                error(exc.format_message().replace("Value error, ", "") + see)
            sys.exit(exc.exit_code)
        except typer.Abort:
            error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class _Command(_OneLineUsageErrors, _FlagsTakeNoValue, TyperCommand):
    pass


class _Group(_OneLineUsageErrors, _FlagsTakeNoValue, TyperGroup):
    pass


class Typer(typer.Typer):
    """A Typer whose groups and commands show flags without a type (see _FlagsTakeNoValue)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def one_line(text: str) -> str:
    """`text` with its line breaks (a DuckDB message, a server's answer) turned into spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def error(message: str, label: str = "error") -> None:
    """`LABEL: MESSAGE` on stderr in one line, as text (not markup): scripts parse it."""
    err.print(f"[red]{escape(label)}:[/red] {escape(one_line(message))}")


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    return "WEBUI_SECRET_KEY" if alias is not None else f"FLOWHISTORY_{field.upper()}"


def _unreadable(exc: SettingsError) -> str:
    """A variable pydantic-settings could not even decode (a complex setting's value is JSON to
    it), named as its variable; the value is not echoed (it may be a secret)."""
    found = re.search(r'for field "(\w+)"', str(exc))
    name = _env_name(found[1]) if found else "a FLOWHISTORY_ variable"
    cause = f" ({one_line(str(exc.__cause__))})" if exc.__cause__ is not None else ""
    return f"{name}: cannot be read{cause}"


def _shown(value: Any) -> str:
    """A setting's value in an error line: control characters escaped (a tab or an escape
    sequence went to the terminal as it was)."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def check_environment() -> None:
    """Refuse (one line, exit 2) before any command runs when a FLOWHISTORY_ variable is invalid,
    e.g. FLOWHISTORY_PORT=83986, rather than with pydantic's traceback. A value pydantic-settings
    cannot decode raises a SettingsError, not a ValidationError: the same one line for it."""
    try:
        Settings()
    except SettingsError as exc:
        error(_unreadable(exc))
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            msg = e["msg"].removeprefix("Value error, ")  # pydantic's, before our checks' own text
            field = str(e["loc"][0]) if e["loc"] else ""
            if not field:  # a check across settings: its input is every setting, secrets too
                problems.append(msg)
            elif _SECRET.search(field):
                problems.append(f"{_env_name(field)}: {msg}")
            else:
                problems.append(f"{_env_name(field)}={_shown(e.get('input'))}: {msg}")
        error("; ".join(problems))
        raise typer.Exit(2) from None


# settings whose value is never echoed back in an error (WEBUI_SECRET_KEY, the SMTP password,
# the S3 keys, an Open WebUI database URL that may hold a password)
_SECRET = re.compile(r"secret|password|key|openwebui_db|export_url", re.IGNORECASE)


def settings_for(db: Path | None) -> Settings:
    """The environment's settings, with `--db` in place of the store path when given."""
    settings = Settings()
    return settings.model_copy(update={"db_path": db}) if db else settings


def fail(exc: FlowHistoryError, code: int) -> NoReturn:
    """Print the library's message (as text, not markup) in one line and exit with `code`."""
    error(exc.detail)
    raise typer.Exit(code) from exc


def refuse_missing_store(settings: Settings) -> None:
    """Exit 1 with one line when there is no store at the path: a command that only reads, or
    changes what a store already holds, never creates one (a mistyped --db or FLOWHISTORY_DB_PATH
    would else get an empty store and its reserve file, and an answer as if it were the real one).

    In Open WebUI mode users, groups and flows come from Open WebUI, so a new store is a valid
    mirror: there any command may start one."""
    if settings.openwebui_db or settings.db_path.exists():
        return
    error(
        f"there is no store at {settings.db_path} (check --db or FLOWHISTORY_DB_PATH; "
        "`flowhistory db upgrade` or `flowhistory serve` creates one)"
    )
    raise typer.Exit(1)


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
    error(str(exc))
    raise typer.Exit(1) from exc


def refuse_while_serving(settings: Settings, why: str) -> NoReturn:
    """One line for a command the API has no counterpart for, and exit 1."""
    error(f"the server at {remote_api.server_url(settings)} holds the store; stop it first ({why})")
    raise typer.Exit(1)


def on_store(
    db: Path | None,
    local: Callable[[Context], T],
    remote: Callable[[Remote], T] | str,
    *,
    migrate: bool = True,
    create: bool = False,
) -> T:
    """Run `local` on the store, or, when a server holds it, `remote` on that server's API.

    Both answer the same shape (the API's JSON) for one printer to show. `remote` as a string
    says why the command cannot go through the API: it is then refused with that reason.
    Without `create` (commands that only read, or change what is there) a path with no store is
    refused (refuse_missing_store); with it (commands that add) a new store is made.
    """
    settings = settings_for(db)
    if not create:
        refuse_missing_store(settings)
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
