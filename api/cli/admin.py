"""`flowhistory users ...`, `keys ...`, `groups ...` and `flowhistory token`: who may use the service."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from analytics.access import users
from analytics.access.auth import create_token, load_secret
from analytics.core.context import Context
from api.cli.common import (
    DbOption,
    Typer,
    UsageError,
    console,
    err,
    error,
    json_of,
    on_store,
    settings_for,
)
from api.schemas.admin import GroupOut, KeyOut, UserOut

users_app = Typer(help="Users and roles.", no_args_is_help=True)
keys_app = Typer(help="API keys.", no_args_is_help=True)
groups_app = Typer(help="Groups for flow access grants.", no_args_is_help=True)

# as the library refuses in a user id (analytics/access/users.py): a forged line in a log
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _plain_id(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """Refuse an empty id, or one with control characters, before it goes anywhere: in an API
    path `/users/{id}` it became `/users/`, which the server redirects (a traceback here), and a
    token carried it into every log line its requests write."""
    name = param.metavar or (param.name or "id").upper()
    if not value:
        raise UsageError(f"{name} must not be empty", ctx)
    if _CONTROL.search(value):
        raise UsageError(f"{name} must not hold control characters (got {value!r})", ctx)
    return value


UserId = Annotated[str, typer.Argument(metavar="USER", callback=_plain_id)]


class Role(StrEnum):
    """users.ROLES as a choice: typer refuses another role itself (exit 2, naming the allowed
    ones), where the library's refusal was exit 1."""

    admin = "admin"
    user = "user"
    pending = "pending"


def _users(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "role", "name", "email")
    for u in rows:
        table.add_row(*map(Text, (u["id"], u["role"], u["name"] or "", u["email"] or "")))
    console.print(table)


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List users."""
    _users(
        on_store(
            db,
            lambda ctx: [json_of(UserOut, u) for u in users.list_users(ctx)],
            lambda api: api.get("/api/v1/users"),
        )
    )


@users_app.command("create")
def users_create(
    user_id: UserId,
    db: DbOption = None,
    role: Annotated[Role, typer.Option(help="The user's role")] = Role.user,
    name: str | None = None,
) -> None:
    """Create a user."""
    made = on_store(
        db,
        lambda ctx: json_of(UserOut, users.create_user(ctx, user_id, role=role.value, name=name)),
        lambda api: api.post("/api/v1/users", json={"id": user_id, "role": role.value, "name": name}),
        create=True,  # the first admin may be made before the first start
    )
    console.print(Text(f"created {made['id']} ({made['role']})"))


@users_app.command("set-role")
def users_set_role(
    user_id: UserId, role: Annotated[Role, typer.Argument(metavar="ROLE")], db: DbOption = None
) -> None:
    """Make a user admin, user or pending."""
    changed = on_store(
        db,
        lambda ctx: json_of(UserOut, users.set_role(ctx, user_id, role.value)),
        lambda api: api.patch(f"/api/v1/users/{quote(user_id, safe='')}", json={"role": role.value}),
    )
    console.print(Text(f"{changed['id']} is now {changed['role']}"))


@keys_app.command("create")
def keys_create(
    user_id: UserId, db: DbOption = None, name: Annotated[str | None, typer.Option(help="A label")] = None
) -> None:
    """Create an API key for a user; it is printed once and stored only as a hash."""

    def local(ctx: Context) -> dict[str, Any]:
        key, record = users.create_api_key(ctx, user_id, name=name)
        return {**json_of(KeyOut, record), "key": key}

    made = on_store(db, local, lambda api: api.post("/api/v1/keys", json={"user_id": user_id, "name": name}))
    err.print(Text(f"API key {made['id']} for {made['user_id']} (shown once):"))
    typer.echo(made["key"])


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    rows = on_store(
        db,
        lambda ctx: [json_of(KeyOut, k) for k in users.list_api_keys(ctx)],
        lambda api: api.get("/api/v1/keys"),
    )
    table = Table("user", "prefix", "name", "created (UTC)")
    table.add_column("id", no_wrap=True, min_width=32)
    for k in rows:
        created = datetime.fromtimestamp(k["created_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(*map(Text, (k["user_id"], k["prefix"] + "…", k["name"] or "", created, k["id"])))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(callback=_plain_id)], db: DbOption = None) -> None:
    """Revoke an API key."""
    on_store(
        db,
        lambda ctx: users.revoke_api_key(ctx, key_id),
        lambda api: api.delete(f"/api/v1/keys/{quote(key_id, safe='')}"),
    )
    console.print(Text(f"revoked {key_id}"))


@groups_app.command("create")
def groups_create(
    name: str,
    db: DbOption = None,
    member: Annotated[list[str] | None, typer.Option("--member", help="A user id; repeat")] = None,
) -> None:
    """Create a group."""
    made = on_store(
        db,
        lambda ctx: json_of(GroupOut, users.create_group(ctx, name, user_ids=member or [])),
        lambda api: api.post("/api/v1/groups", json={"name": name, "user_ids": member or []}),
        create=True,
    )
    console.print(Text(f"created group {made['id']} ({made['name']})"))


@groups_app.command("list")
def groups_list(db: DbOption = None) -> None:
    """List groups and their members."""
    rows = on_store(
        db,
        lambda ctx: [json_of(GroupOut, g) for g in users.list_groups(ctx)],
        lambda api: api.get("/api/v1/groups"),
    )
    table = Table("name", "members")
    table.add_column("id", no_wrap=True, min_width=32)
    for g in rows:
        table.add_row(*map(Text, (g["name"], ", ".join(g["user_ids"]), g["id"])))
    console.print(table)


@groups_app.command("set-members")
def groups_set_members(
    group_id: Annotated[str, typer.Argument(callback=_plain_id)], user_ids: list[str], db: DbOption = None
) -> None:
    """Replace a group's members."""
    changed = on_store(
        db,
        lambda ctx: json_of(GroupOut, users.set_group_members(ctx, group_id, user_ids)),
        lambda api: api.put(
            f"/api/v1/groups/{quote(group_id, safe='')}/members", json={"user_ids": user_ids}
        ),
    )
    console.print(Text(f"group {changed['id']}: {', '.join(changed['user_ids'])}"))


TOKEN_LIFETIME_S = 30 * 86_400  # a JWT cannot be revoked: it should not outlive its purpose
TOKEN_MAX_LIFETIME_S = 365 * 86_400  # past a year a token is as good as never-expiring: an API key


def token(
    user_id: UserId,
    db: DbOption = None,
    expires_in: Annotated[
        int,
        typer.Option(help="Seconds until it expires (default 30 days); at most 31536000 (365 days)"),
    ] = TOKEN_LIFETIME_S,
) -> None:
    """Mint an Open WebUI-style JWT for a user, signed with WEBUI_SECRET_KEY; it expires.

    A JWT cannot be revoked, so there are no never-expiring ones (nor any living longer than 365
    days): for a lasting credential create an API key (`flowhistory keys create USER`), which
    `keys revoke` can withdraw.
    """
    if not 0 < expires_in <= TOKEN_MAX_LIFETIME_S:
        error(
            f"--expires-in must be a positive number of seconds, at most {TOKEN_MAX_LIFETIME_S} "
            f"(365 days) (got {expires_in}); for a credential that does not expire create an API "
            "key: `flowhistory keys create USER`"
        )
        raise typer.Exit(2)
    settings = settings_for(db)
    if (
        not settings.webui_secret_key
        and not settings.secret_key_file.exists()
        and not settings.db_path.exists()
    ):
        # load_secret would make a new random secret (and its folder) there: a mistyped --db
        # printed a token no server accepts, exit 0
        error(
            f"there is no store at {settings.db_path}, nor a {settings.secret_key_file.name} beside it, "
            "and WEBUI_SECRET_KEY is not set: a token signed here would match no server's secret "
            "(check --db or FLOWHISTORY_DB_PATH); nothing created"
        )
        raise typer.Exit(1)
    typer.echo(create_token(load_secret(settings), user_id, expires_in=expires_in))
