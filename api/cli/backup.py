"""`flowhistory backup DEST` and `flowhistory restore SRC`: a consistent copy of the store, and
putting one back (analytics/core/backup.py).

While a server holds the store, `backup` asks it over HTTP (`POST /api/v1/admin/backup`, with the
admin key from the data folder): the server copies on its writer into its backup folder, and the
file is then moved to DEST when that folder is on this machine. `restore` needs the server
stopped: DuckDB allows one process per store, and a running server would keep its old file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from analytics.core import backup as backups
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import FlowHistoryError, StoreLocked
from api.cli import remote
from api.cli.common import DbOption, console, error, fail, settings_for

BACKUP_TIMEOUT_S = 3600.0  # a large store takes a while to copy; the server answers when done


def backup_command(
    dest: Annotated[Path, typer.Argument(help="The backup file to write (must not exist)")],
    db: DbOption = None,
) -> None:
    """Copy the store to DEST, consistent even while a server serves and ingests."""
    settings = settings_for(db)
    if dest.exists():
        fail(FlowHistoryError(f"{dest} exists; a backup never overwrites a file"), 1)
    if not settings.db_path.exists():
        fail(FlowHistoryError(f"there is no store at {settings.db_path}"), 2)
    try:
        ctx = open_context(settings)
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
        f"backed up {done.runs} runs ({done.bytes} bytes, schema {done.schema_version}) to {escape(str(dest))}"
    )


def _through_server(settings: Settings, dest: Path) -> None:
    """The server holds the store: it takes the backup; the file then moves to DEST."""
    key_file = settings.admin_key_file
    if not key_file.is_file():
        fail(
            FlowHistoryError(
                f"a server holds {settings.db_path}, and there is no admin key in {key_file} to ask it "
                "with: call POST /api/v1/admin/backup with an admin key, or stop the server"
            ),
            2,
        )
    url = remote.server_url(settings)
    try:
        r = httpx.post(
            f"{url}/api/v1/admin/backup",
            headers={"Authorization": f"Bearer {key_file.read_text().strip()}"},
            timeout=BACKUP_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        fail(
            FlowHistoryError(
                f"a process holds {settings.db_path}, but no server answers at {url} ({exc}); set "
                "FLOWHISTORY_HOST/FLOWHISTORY_PORT to the server's address, or stop that process"
            ),
            2,
        )
    body: dict[str, Any] = (
        r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    )
    if r.status_code != 200:
        fail(
            FlowHistoryError(
                f"the server refused the backup ({r.status_code}): {body.get('detail', r.text)}"
            ),
            1,
        )
    made = settings.backups_dir / body["name"]
    summary = f"{body['runs']} runs ({body['bytes']} bytes, schema {body['schema_version']})"
    if not made.is_file():
        console.print(
            f"the server backed up {summary} to {escape(body['name'])} in its backup folder "
            "(FLOWHISTORY_BACKUP_DIR), which is not on this machine: copy it from there"
        )
        return
    try:
        backups.place_backup(made, dest)
    except (OSError, FlowHistoryError) as exc:
        why = exc.detail if isinstance(exc, FlowHistoryError) else exc
        error(f"the backup is at {made}; moving it to {dest} failed (nothing was left there): {why}")
        raise typer.Exit(1) from exc
    console.print(f"backed up {summary} through the server at {url} to {escape(str(dest))}")


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
        f"restored {done.runs} runs (schema {done.schema_version}) into {escape(str(done.db_path))}"
        + (f"; the store it replaced is {escape(str(done.previous))}" if done.previous else "")
    )
