"""Flow shapes as the contract names them; unknown keys from the client are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics.flows.registry import NAME_MAX
from api.schemas.timestamps import EpochSeconds


class FlowForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str | None = None
    nodes: list[Any] = Field(default_factory=list)
    edges: list[Any] = Field(default_factory=list)
    meta: dict[str, Any] | None = None
    access_control: dict[str, Any] | None = None


class FlowUpdate(BaseModel):
    """Omitted fields stay as they are; an explicit `access_control: null` makes it public."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
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


class FlowListItem(BaseModel):
    """A row of `GET /` and `GET /accessible`: the flow without its owner, as the peer lists it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    nodes: list[Any]
    edges: list[Any]
    meta: dict[str, Any]
    access_control: dict[str, Any] | None
    created_at: EpochSeconds
    updated_at: EpochSeconds


class FlowOut(FlowListItem):
    """The full flow (get, create, import, update, duplicate): with its owner."""

    user_id: str


class FlowImport(FlowForm):
    """What export produced (`{"version", "flow": {...}}`) or a bare flow object. Without
    `access_control` (export leaves it out) the flow starts private, as a duplicate does: a
    private flow exported and imported again was public, its prompts readable by every user."""

    access_control: dict[str, Any] | None = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "flow" in data:
            if not isinstance(data["flow"], dict):
                raise ValueError("flow must be an object: what GET /{id}/export answered")
            return data["flow"]
        return data


class DuplicateForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)


class FlowDefinitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str | None
    nodes: list[Any]
    edges: list[Any]
    meta: dict[str, Any]


class FlowExportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: str
    flow: FlowDefinitionOut
    exportedAt: EpochSeconds = Field(validation_alias="exported_at")  # the contract's name


class ExecuteOut(BaseModel):
    message: str
    flowId: str  # the contract's name
    status: str
