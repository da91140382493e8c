"""Users, API keys and groups: admins only, except reading one's own user."""

from __future__ import annotations

from fastapi import APIRouter

from analytics.access import users
from api.dependencies import AdminUser, Ctx, CurrentUser
from api.json_body import JsonRoute
from api.schemas.admin import (
    GroupCreate,
    GroupMembers,
    GroupOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    UserCreate,
    UserOut,
    UserUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["admin"], route_class=JsonRoute)


@router.get("/users/me", response_model=UserOut)
def who_am_i(viewer: CurrentUser, ctx: Ctx) -> UserOut:
    """The caller's own user."""
    return UserOut.model_validate(ctx.directory.user(viewer.id))


@router.get("/users", response_model=list[UserOut])
def list_users(_: AdminUser, ctx: Ctx) -> list[UserOut]:
    """Every user."""
    return [UserOut.model_validate(u) for u in users.list_users(ctx)]


@router.post("/users", response_model=UserOut, responses={409: {"description": "That user id exists"}})
def create_user(form: UserCreate, _: AdminUser, ctx: Ctx) -> UserOut:
    """Create a user."""
    return UserOut.model_validate(
        users.create_user(ctx, form.id, role=form.role, name=form.name, email=form.email)
    )


@router.patch(
    "/users/{user_id:path}",  # an id may hold a `/` (sent as `%2F` or as it is)
    response_model=UserOut,
    responses={
        409: {"description": "Would leave no admin, or no admin holding an API key: change another first"}
    },
)
def update_user(user_id: str, form: UserUpdate, _: AdminUser, ctx: Ctx) -> UserOut:
    """Change a user's role (admin, user, pending)."""
    return UserOut.model_validate(users.set_role(ctx, user_id, form.role))


@router.get("/keys", response_model=list[KeyOut])
def list_keys(_: AdminUser, ctx: Ctx) -> list[KeyOut]:
    """Every API key (never the key itself)."""
    return [KeyOut.model_validate(k) for k in users.list_api_keys(ctx)]


@router.post("/keys", response_model=KeyCreated)
def create_key(form: KeyCreate, _: AdminUser, ctx: Ctx) -> KeyCreated:
    """Create an API key for a user; the key is in this answer only."""
    key, record = users.create_api_key(ctx, form.user_id, name=form.name)
    return KeyCreated(key=key, **KeyOut.model_validate(record).model_dump())


@router.delete(
    "/keys/{key_id}",
    response_model=bool,
    responses={409: {"description": "The last key any admin holds: create another admin key first"}},
)
def revoke_key(key_id: str, _: AdminUser, ctx: Ctx) -> bool:
    """Revoke an API key (not the last one an admin holds)."""
    users.revoke_api_key(ctx, key_id)
    return True


@router.get("/groups", response_model=list[GroupOut])
def list_groups(_: AdminUser, ctx: Ctx) -> list[GroupOut]:
    """Every group with its members."""
    return [GroupOut.model_validate(g) for g in users.list_groups(ctx)]


@router.post("/groups", response_model=GroupOut)
def create_group(form: GroupCreate, _: AdminUser, ctx: Ctx) -> GroupOut:
    """Create a group (used in flows' access_control grants)."""
    return GroupOut.model_validate(
        users.create_group(ctx, form.name, user_ids=form.user_ids, description=form.description)
    )


@router.put("/groups/{group_id}/members", response_model=GroupOut)
def set_group_members(group_id: str, form: GroupMembers, _: AdminUser, ctx: Ctx) -> GroupOut:
    """Replace a group's members."""
    return GroupOut.model_validate(users.set_group_members(ctx, group_id, form.user_ids))
