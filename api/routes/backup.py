"""A consistent backup of the store while it serves: admins only, into the backup folder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from analytics.core import backup
from api.dependencies import AdminUser, Ctx
from api.json_body import JsonRoute
from api.schemas.backup import BackupOut

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=JsonRoute)


@router.post(
    "/backup",
    response_model=BackupOut,
    responses={
        409: {"description": "A backup is running"},
        507: {"description": "The backup folder's disk is full: no backup was made"},
    },
)
def take_backup(
    _: AdminUser,
    ctx: Ctx,
    collect: Annotated[
        str | None,
        Query(
            pattern="^[0-9a-f]{32}$",
            description="The `flowhistory backup` CLI's token: when its locked marker is in the "
            "backup folder, the file gets a hidden name (`.flowhistory-….duckdb.uncollected-<token>`) "
            "and is removed at the next backup or start if the CLI never took it",
        ),
    ] = None,
) -> BackupOut:
    """Copy the store, consistent while it serves and ingests, to a new file under a generated
    name in the server's backup folder (`FLOWHISTORY_BACKUP_DIR`, default `<data>/backups`);
    every run acknowledged before this call began is in it. Takes no body: the server never
    writes where a request says. It needs about the store's size free there: 507 says how much."""
    done = backup.backup_to_folder(ctx, collect)
    return BackupOut(
        name=done.path.name,
        bytes=done.bytes,
        runs=done.runs,
        tables=done.tables,
        schema_version=done.schema_version,
        seconds=done.seconds,
    )
