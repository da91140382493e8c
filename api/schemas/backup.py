"""A backup the server took, for admins."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BackupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="The file's name in the server's backup folder (FLOWHISTORY_BACKUP_DIR)")
    bytes: int
    runs: int = Field(description="Runs in the backup")
    tables: dict[str, int] = Field(description="Rows per table, checked equal to the store's")
    schema_version: int
    seconds: float
