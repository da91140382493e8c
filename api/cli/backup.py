"""`flowhistory backup DEST` and `flowhistory restore SRC`: a consistent copy of the store, and
putting one back (analytics/core/backup.py).

While a server holds the store, `backup` asks it over HTTP (`POST /api/v1/admin/backup`, as every
remote command asks: api/cli/remote.py): the server copies on its writer into its backup folder,
and the file is then moved to DEST when that folder is on this machine. The CLI holds a locked
marker in that folder while it runs (`backups.collecting`), so the server names the copy as one
to collect (`.flowhistory-….duckdb.uncollected-<token>`): killed before it took the file, the CLI
leaves a copy the next backup or server start removes, not a backup that stays. `restore` needs the server
stopped: DuckDB allows one process per store, and a running server would keep its old file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from analytics.core import backup as backups
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import FlowHistoryError, StoreLocked
from api.cli import remote
from api.cli.common import DbOption, console, error, fail, fail_remote, settings_for


def backup_command(
    dest: Annotated[Path, typer.Argument(help="The backup file to write (must not exist)")],
    db: DbOption = None,
) -> None:
    """Copy the store to DEST, consistent even while a server serves and ingests."""
    settings = settings_for(db)
    try:  # before a server is asked: a refused DEST left a full copy in its folder each time
        backups.check_dest(dest)
    except FlowHistoryError as exc:
        fail(exc, 1)
    if not settings.db_path.exists():
        fail(FlowHistoryError(f"there is no store at {settings.db_path}"), 2)
    try:  # not migrated: a backup taken before an upgrade is of the store as it was
        ctx = open_context(settings, migrate=False)
    except StoreLocked:
        _through_server(settings, dest)
        return
    except FlowHistoryError as exc:
        fail(exc, 2)
    try:
        done = backups.backup(ctx, dest)
    except FlowHistoryError as exc:
        fail(exc, 1)
    finally:
        ctx.close()
    console.print(
        Text(f"backed up {done.runs} runs ({done.bytes} bytes, schema {done.schema_version}) to {dest}")
    )


def _through_server(settings: Settings, dest: Path) -> None:
    """The server holds the store: it takes the backup (asked as every remote command asks, with
    the same key); the file then moves to DEST."""
    with backups.collecting(settings.backups_dir) as claim:
        try:
            with remote.connect(settings) as api:
                params = {"collect": claim.token} if claim is not None else {}
                body: dict[str, Any] = api.post("/api/v1/admin/backup", params=params)
                url = api.url
        except remote.RemoteError as exc:
            fail_remote(exc)
        made = settings.backups_dir / body["name"]
        summary = f"{body['runs']} runs ({body['bytes']} bytes, schema {body['schema_version']})"
        if not made.is_file():
            console.print(
                Text(
                    f"the server backed up {summary} to {body['name']} in its backup folder "
                    "(FLOWHISTORY_BACKUP_DIR), which is not on this machine: copy it from there"
                )
            )
            return
        try:
            backups.place_backup(made, dest)
        except (OSError, FlowHistoryError) as exc:
            why = exc.detail if isinstance(exc, FlowHistoryError) else exc
            made = backups.keep(made)  # its plain name: a copy never collected would be removed
            error(f"the backup is at {made}; moving it to {dest} failed (nothing was left there): {why}")
            raise typer.Exit(1) from exc
    console.print(Text(f"backed up {summary} through the server at {url} to {dest}"))


def restore_command(
    src: Annotated[Path, typer.Argument(help="A backup file written by `flowhistory backup`")],
    db: DbOption = None,
) -> None:
    """Put the backup SRC in place of the store (server stopped); the old store is kept beside it
    as <db>.before-restore-<time>, so a restore can be undone."""
    settings = settings_for(db)
    try:
        done = backups.restore(src, settings.db_path)
    except StoreLocked as exc:
        fail(exc, 2)
    except FlowHistoryError as exc:
        fail(exc, 1)
    console.print(
        Text(
            f"restored {done.runs} runs (schema {done.schema_version}) into {done.db_path}"
            + (f"; the store it replaced is {done.previous}" if done.previous else "")
        )
    )
