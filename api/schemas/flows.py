"""Flow shapes as the contract names them; unknown keys from the client are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.timestamps import EpochSeconds


class FlowForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    nodes: list[Any] = Field(default_factory=list)
    edges: list[Any] = Field(default_factory=list)
    meta: dict[str, Any] | None = None
    access_control: dict[str, Any] | None = None


class FlowUpdate(BaseModel):
    """Omitted fields stay as they are; an explicit `access_control: null` makes it public."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    nodes: list[Any] | None = None
    edges: list[Any] | None = None
    meta: dict[str, Any] | None = None
    access_control: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        given = {k: getattr(self, k) for k in self.model_fields_set}
        for key in ("name", "nodes", "edges"):
            if key in given and given[key] is None:
                del given[key]  # null for a required field means "leave it"
        return given


class FlowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    name: str
    description: str | None
    nodes: list[Any]
    edges: list[Any]
    meta: dict[str, Any] | None
    access_control: dict[str, Any] | None
    created_at: EpochSeconds
    updated_at: EpochSeconds
