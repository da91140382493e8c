"""Users, groups and API keys.

API keys are `sk-` + 32 hex characters (Open WebUI's shape) drawn from `secrets`; they are
stored only as SHA-256 hashes. A fast hash is right here: a 128-bit random key cannot be
guessed, so a slow password hash would only slow every request down.

In Open WebUI mode users and groups are Open WebUI's: changing them here is ManagedByOpenWebUI
(409); our API keys stay available, for service accounts of users Open WebUI has.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.access.directory import User
from analytics.core.clock import utc_now
from analytics.core.context import Context
from analytics.core.errors import Conflict, InvalidInput, ManagedByOpenWebUI, NotAuthenticated, NotFound
from analytics.core.store import Connection, one_row
from analytics.core.user_ids import CONTROL as _CONTROL
from analytics.core.user_ids import MAX_LENGTH, addressable, is_user_id

ROLES = ("admin", "user", "pending")
# free text an admin gives: a user's name and email, a key's or group's name (255, as a user id),
# a group's description. Uncapped, a 10 MB name was stored and served on every GET /users.
MAX_NAME = 255
MAX_DESCRIPTION = 2_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    prefix: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    description: str | None
    user_ids: tuple[str, ...]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")


def _ours(ctx: Context, what: str) -> None:
    if ctx.directory.external:
        raise ManagedByOpenWebUI(what)


def create_user(
    ctx: Context, user_id: str, *, role: str = "user", name: str | None = None, email: str | None = None
) -> User:
    _ours(ctx, "users")
    _check_role(role)
    _check_length(name, "name", MAX_NAME)
    _check_length(email, "email", MAX_NAME)
    if not user_id or len(user_id) > 255:
        raise InvalidInput("user id must be 1 to 255 characters", field="id")
    if _CONTROL.search(user_id):
        raise InvalidInput("user id must not hold control characters", field="id")
    if not addressable(user_id):
        raise InvalidInput(
            "user id must have no '.' or '..' segment (between slashes, %2e counting as a dot) and no"
            " \\, ? or #: it goes in a URL (/api/v1/users/{id}), which a client resolves, and such a user"
            " could never be changed",
            field="id",
        )
    if ctx.directory.user(user_id) is not None:
        raise Conflict(f"user {user_id} already exists")
    ctx.write_registry(
        lambda c: c.execute(
            "INSERT INTO users (id, name, email, role) VALUES (?, ?, ?, ?)", [user_id, name, email, role]
        )
    )
    return User(user_id, name, email, role)


def _check_length(value: str | None, field: str, most: int) -> None:
    if value is not None and len(value) > most:
        raise InvalidInput(f"{field}: at most {most:,} characters", field=field)


def ensure_user(ctx: Context, user_id: str, *, role: str = "user") -> User:
    """The user, created with `role` on first sight (a valid Open WebUI token we have not seen)."""
    found = ctx.directory.user(user_id)
    if found is not None:
        return found
    if _CONTROL.search(user_id):
        raise NotAuthenticated("the token's user id holds control characters")
    if not addressable(user_id):
        raise NotAuthenticated(
            "the token's user id cannot be a user here (a '.' or '..' segment, \\, ? or #)"
        )
    _ours(ctx, "users")
    ctx.write_registry(
        lambda c: c.execute(
            "INSERT INTO users (id, role) VALUES (?, ?) ON CONFLICT DO NOTHING", [user_id, role]
        )
    )
    found = ctx.directory.user(user_id)
    assert found is not None
    return found


def set_role(ctx: Context, user_id: str, role: str) -> User:
    """Change a user's role; Conflict if that would leave no admin.

    The last-admin check reads on the writer, in the transaction of the change: two demotions
    of the last two admins are serialized there and the second sees the first.
    """
    _ours(ctx, "users")
    _check_role(role)

    def update(c: Connection) -> User:
        row = one_row(c.execute("SELECT id, name, email, role FROM users WHERE id = ?", [user_id]))
        if row is None:
            raise NotFound(f"user {user_id} not found")
        if row[3] == "admin" and role != "admin":
            other = c.execute("SELECT 1 FROM users WHERE role = 'admin' AND id <> ? LIMIT 1", [user_id])
            if not other.fetchall():
                raise Conflict(
                    f"{user_id} is the last admin: make another user admin first, then change this one"
                )
            if _holds_the_last_admin_keys(c, user_id):
                raise Conflict(
                    f"{user_id} holds the last API key an admin holds: create a key for another admin"
                    " first, then change this one"
                )
        c.execute("UPDATE users SET role = ? WHERE id = ?", [role, user_id])
        return User(row[0], row[1], row[2], role)

    result: User = ctx.write_registry(update)
    return result


def list_users(ctx: Context) -> list[User]:
    return sorted(ctx.directory.users(), key=lambda u: u.id)


def create_api_key(ctx: Context, user_id: str, *, name: str | None = None) -> tuple[str, ApiKey]:
    """A new key for the user; the plain key is returned here once and never stored."""
    if name is not None and _CONTROL.search(name):  # a newline forged a row of `keys list`
        raise InvalidInput("key name must not hold control characters", field="name")
    _check_length(name, "name", MAX_NAME)
    if ctx.directory.user(user_id) is None:
        raise NotFound(f"user {user_id} not found")
    key = "sk-" + secrets.token_hex(16)
    # stamped here, not by the column's DEFAULT: the answer and the stored row are one value, in UTC
    record = ApiKey(uuid.uuid4().hex, user_id, key[:7], name, utc_now())
    ctx.write_registry(
        lambda c: c.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, prefix, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [record.id, user_id, hash_key(key), record.prefix, name, record.created_at],
        )
    )
    return key, record


def list_api_keys(ctx: Context, *, user_id: str | None = None) -> list[ApiKey]:
    sql = "SELECT id, user_id, prefix, name, created_at FROM api_keys"
    params: list[object] = []
    if user_id is not None:
        sql += " WHERE user_id = ?"
        params.append(user_id)
    rows = ctx.store.read(lambda c: c.execute(sql + " ORDER BY created_at", params).fetchall())
    return [ApiKey(*r) for r in rows]


def revoke_api_key(ctx: Context, key_id: str) -> None:
    """Conflict for the last key any admin holds: revoked, no admin could call the API (nor the
    CLI through a running server, which uses an admin's key) until a token was minted. Checked
    on the writer, in the transaction of the revoke, so two revokes racing leave one key."""
    managed = [u.id for u in ctx.directory.users() if u.role == "admin"]  # Open WebUI's admins

    def revoke(c: Connection) -> list[tuple[Any, ...]]:
        admins = _admins(c, managed)
        row = one_row(c.execute("SELECT user_id FROM api_keys WHERE id = ?", [key_id]))
        if row is not None and row[0] in admins:
            others = c.execute(
                "SELECT 1 FROM api_keys WHERE id <> ? AND list_contains(?::VARCHAR[], user_id) LIMIT 1",
                [key_id, admins],
            ).fetchall()
            if not others:
                raise Conflict(
                    f"API key {key_id} is the last key an admin holds: create another admin key first,"
                    " then revoke this one"
                )
        return c.execute("DELETE FROM api_keys WHERE id = ? RETURNING id", [key_id]).fetchall()

    if not ctx.write_registry(revoke):
        raise NotFound(f"API key {key_id} not found")


def _admins(c: Connection, managed: list[str]) -> list[str]:
    """The admins as the transaction sees them (a demotion committed just before counts), and
    those Open WebUI has (`managed`, from the directory: not in this store)."""
    stored = [r[0] for r in c.execute("SELECT id FROM users WHERE role = 'admin'").fetchall()]
    return list(dict.fromkeys([*stored, *managed]))


def _holds_the_last_admin_keys(c: Connection, user_id: str) -> bool:
    """`user_id` holds a key and no other admin does: demoted, no admin could use the API with a
    key (nor the CLI through a running server)."""
    holds = c.execute("SELECT 1 FROM api_keys WHERE user_id = ? LIMIT 1", [user_id]).fetchall()
    others = c.execute(
        "SELECT 1 FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.role = 'admin' AND u.id <> ? LIMIT 1",
        [user_id],
    ).fetchall()
    return bool(holds) and not others


def _members(user_ids: list[str]) -> tuple[str, ...]:
    """Members are user ids by the rule a user's id follows (analytics/core/user_ids.py: `..` or
    `a/../bob` was stored as a member no user can be). One no user has yet is kept: an Open WebUI
    user who has not signed in here gets the group's grants when they do."""
    members = tuple(dict.fromkeys(user_ids))
    for uid in members:
        if not is_user_id(uid):
            raise InvalidInput(
                f"user_ids: {uid!r} is not a user id (1 to {MAX_LENGTH} characters, no control"
                " characters, no \\, ? or #, no '.' or '..' segment)",
                field="user_ids",
            )
    return members


def _check_group_name(name: str) -> None:
    if not name.strip():
        raise InvalidInput("group name must not be empty", field="name")
    if _CONTROL.search(name):
        raise InvalidInput("group name must not hold control characters", field="name")


def create_group(
    ctx: Context, name: str, *, user_ids: list[str] | None = None, description: str | None = None
) -> Group:
    _ours(ctx, "groups")
    _check_group_name(name)
    _check_length(description, "description", MAX_DESCRIPTION)
    group = Group(uuid.uuid4().hex, name, description, _members(user_ids or []))

    def insert(c: Connection) -> None:
        c.execute(
            "INSERT INTO groups (id, name, description) VALUES (?, ?, ?)", [group.id, name, description]
        )
        for uid in group.user_ids:
            c.execute("INSERT INTO group_members VALUES (?, ?)", [group.id, uid])

    ctx.write_registry(insert)
    return group


def set_group_members(ctx: Context, group_id: str, user_ids: list[str]) -> Group:
    _ours(ctx, "groups")
    rows = ctx.store.read(
        lambda c: c.execute("SELECT id, name, description FROM groups WHERE id = ?", [group_id]).fetchall()
    )
    if not rows:
        raise NotFound(f"group {group_id} not found")
    members = _members(user_ids)

    def replace(c: Connection) -> None:
        c.execute("DELETE FROM group_members WHERE group_id = ?", [group_id])
        for uid in members:
            c.execute("INSERT INTO group_members VALUES (?, ?)", [group_id, uid])

    ctx.write_registry(replace)
    gid, name, description = rows[0]
    return Group(gid, name, description, members)


def list_groups(ctx: Context) -> list[Group]:
    _ours(ctx, "groups")
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT g.id, g.name, g.description,"
            " list(m.user_id ORDER BY m.user_id) FILTER (m.user_id IS NOT NULL)"
            " FROM groups g LEFT JOIN group_members m ON m.group_id = g.id GROUP BY ALL ORDER BY g.name, g.id"
        ).fetchall()
    )
    return [Group(gid, name, desc, tuple(members or [])) for gid, name, desc, members in rows]


@dataclass(frozen=True, slots=True)
class FirstAdminKey:
    """The API key a first start made: `key` is shown once (and saved 0600 to admin_key_file).
    `named` when its user is the first of FLOWHISTORY_ADMIN_USER_IDS, not the user `admin`."""

    user_id: str
    key: str
    named: bool


def bootstrap_admin(ctx: Context) -> FirstAdminKey | None:
    """On a store with no admin (a first start), make one and an API key for it, saved 0600.

    Every id in settings.admin_user_ids is made an admin, every start. On the first start the
    key is for the first of them (created as admin just before), else for the user `admin`,
    created then: with those ids set, no admin key was made at all, and every CLI command
    through the server failed for want of one while the banner said to sign in with it.

    Nothing in Open WebUI mode: its admins are the admins (the ids do not apply there), and an
    Open WebUI admin's own API key serves the CLI (FLOWHISTORY_API_KEY).
    """
    if ctx.directory.external or ctx.settings.openwebui_db:
        return None
    first_start = not any(u.role == "admin" for u in ctx.directory.users())
    for uid in ctx.settings.admin_user_ids:
        user = ctx.directory.user(uid)
        if user is None:
            create_user(ctx, uid, role="admin")
        elif user.role != "admin":
            set_role(ctx, uid, "admin")
    if not first_start:
        return None
    named = bool(ctx.settings.admin_user_ids)
    owner = ctx.settings.admin_user_ids[0] if named else "admin"
    if not named:
        if ctx.directory.user("admin") is None:
            create_user(ctx, "admin", role="admin", name="Administrator")
        else:
            set_role(ctx, "admin", "admin")
    key, _ = create_api_key(ctx, owner, name="bootstrap")
    path = ctx.settings.admin_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return FirstAdminKey(owner, key, named)
