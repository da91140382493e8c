"""The `flowhistory` command: serve, migrations, users, keys, groups, tokens, cleanup, jobs, SQL,
exports, retention, alerts, backup and restore; one module per domain, named like the `api/routes/` module it mirrors.

Commands other than `serve` open the store directly. A running server holds the file (DuckDB
allows one process per store): they then ask that server's HTTP API (api/cli/remote.py) and
print the same, or, where the API has no counterpart, say in one line to stop the server.

Which commands may create a store at a path that has none: `serve`, `db upgrade`, `users create`,
`groups create`, `retention policy --set`, `import openwebui` and `restore` (they add to a store,
or put one in place). Every other command that opens the store only reads it or changes what it
holds: on a path with no store it says so in one line and exits 1, creating nothing
(common.refuse_missing_store; in Open WebUI mode any command may). `sql`, `token`, `jobs` and
`backup` do not open it for writing (`backup` refuses a missing store itself).

A file the operating system refuses (an output in a folder that does not exist or may not be
written, a store path under a file) is one line naming the path and the reason, exit 1, whichever
command met it (_OneLineFileErrors).
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer._click.core import Context as ClickContext

from api.cli import admin, alerts, backup, db, executions, exports, importer, jobs, retention, serve, sql
from api.cli.common import Typer, _Group, check_environment, error


def file_error(exc: OSError) -> str:
    """`PATH: REASON` as the shell says it (`a -> b: REASON` for a rename), not Python's repr."""
    if exc.filename is None:
        return str(exc)
    path = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
    return f"{path}: {exc.strerror or exc}"


class _OneLineFileErrors(_Group):
    """Every command opens or writes a file somewhere: rather than each guarding every open, the
    root group turns what the OS refuses into one line, exit 1 (it was a traceback: `restore
    --db FILE/x.duckdb`, `sql -o /no/such/dir/x.csv`, an archive folder that cannot be made).

    DuckDB's own IOException (a --db that is a folder or not a DuckDB file) is the library's to
    turn into a FlowHistoryError: this layer does not import duckdb (tests/test_architecture.py)."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            error(file_error(exc))
            raise typer.Exit(1) from exc


app = Typer(help="flowhistory: execution history and analytics for AI flows.", no_args_is_help=True)
app.info.cls = _OneLineFileErrors
# before every command: an invalid FLOWHISTORY_ variable (FLOWHISTORY_PORT=83986) is one line, exit 2
app.callback()(check_environment)

# Help lists commands in the order they are added here, groups after commands.
app.command()(serve.serve)
app.command()(admin.token)
app.command()(executions.cleanup)
app.command("sql")(sql.sql_command)
app.command("backup")(backup.backup_command)
app.command("restore")(backup.restore_command)
app.add_typer(db.app, name="db")
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.groups_app, name="groups")
app.add_typer(jobs.app, name="jobs")
app.add_typer(exports.app, name="export")
app.add_typer(retention.app, name="retention")
app.add_typer(alerts.app, name="alerts")
app.add_typer(importer.app, name="import")


PRIVATE_FILES = 0o077


def main() -> None:
    """The `flowhistory` entry point. Every file it makes is its user's alone: the store and its
    WAL hold every run's prompts and outputs and the channels' webhook secrets, and were made
    0644 like the backups and exports (the admin key file alone was 0600). Set here, not in
    `app`, so tests driving `app` in process keep their own umask. An export meant for other
    local users gets a default ACL on its folder (README, "Two commands"), which the umask yields to."""
    os.umask(PRIVATE_FILES)
    app()
