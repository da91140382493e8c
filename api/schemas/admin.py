"""Users, API keys and groups, for admins."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.access.users import MAX_DESCRIPTION, MAX_NAME
from api.schemas.timestamps import EpochSeconds

Role = Literal["admin", "user", "pending"]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    email: str | None
    role: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=255)
    role: Role = "user"
    name: str | None = Field(default=None, max_length=MAX_NAME)
    email: str | None = Field(default=None, max_length=MAX_NAME)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(default=None, max_length=MAX_NAME, description="no control characters")


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    prefix: str
    name: str | None
    created_at: EpochSeconds


class KeyCreated(KeyOut):
    key: str = Field(description="shown once; only its hash is stored")


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    user_ids: list[str] = Field(default_factory=list)


class GroupMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[str]


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    user_ids: list[str]
