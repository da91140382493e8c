"""Turn a bearer credential into a Viewer: Open WebUI JWTs and our `sk-` API keys.

JWTs are HS256 signed with WEBUI_SECRET_KEY and carry the user id in `id`, optionally `exp`;
the role is looked up per request (the directory), as Open WebUI does. alg `none`, another
algorithm, a wrong secret, an expired or malformed token, an unknown key and a `pending` user
are all NotAuthenticated (401); 403 is only for a verified user without access to a flow.
In Open WebUI mode a token for a user Open WebUI does not have is 401 (no auto-creation), and
Open WebUI's own `sk-` keys (user.api_key, hashed into the directory at sync) are accepted.
There only `admin` and `user` pass, whatever the credential: Open WebUI's get_verified_user
admits nothing else, so a role it does not know (NULL, '', 'guest') must not let anyone in.

In Open WebUI mode the directory is a mirror its poller refreshes every `openwebui_poll_s`;
while Open WebUI's database cannot be read the mirror stays as last read. Then a credential the
mirror lacks may belong to a user created since: it is OpenWebUIUnreadable (503, retry), not 401,
once the mirror is behind (`openwebui_behind_s`: no successful poll for three polls). Past
`openwebui_max_stale_s` every request is 503: a user deleted or demoted in Open WebUI must not
keep access for as long as an outage lasts.
"""

from __future__ import annotations

import os
import secrets

import jwt

from analytics.access.permissions import Viewer
from analytics.access.users import ensure_user, hash_key
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, NotAuthenticated, NotReady

_ALGORITHMS = ["HS256"]
_OPEN_WEBUI_ROLES = frozenset({"admin", "user"})  # Open WebUI's get_verified_user: nothing else


class OpenWebUIUnreadable(NotReady):
    """Open WebUI's database cannot be read now, and the answer depends on what it holds: 503,
    the client is to retry (a NotReady: this process cannot do that work now)."""


def unreadable(age: float) -> OpenWebUIUnreadable:
    return OpenWebUIUnreadable(
        f"Open WebUI's database cannot be read (last read {int(age)} s ago), so flowhistory cannot"
        " check this now: retry in a few seconds"
    )


def load_secret(settings: Settings) -> str:
    """WEBUI_SECRET_KEY, or (like Open WebUI's start.sh) a random one kept beside the store."""
    if settings.webui_secret_key:
        return settings.webui_secret_key
    path = settings.secret_key_file
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret


def create_token(secret: str, user_id: str, *, expires_in: int | None = None) -> str:
    """A token as Open WebUI issues it (for the CLI, tests and scripts)."""
    import time

    claims: dict[str, object] = {"id": user_id}
    if expires_in is not None:
        claims["exp"] = int(time.time()) + expires_in
    return jwt.encode(claims, secret, algorithm="HS256")


def authenticate(ctx: Context, secret: str, credential: str | None, path: str | None = None) -> Viewer:
    """The caller of a request to `path`, or NotAuthenticated: the role is checked last, for
    every kind of credential (a JWT, an Open WebUI key, one of ours), so none can get around
    it. An Open WebUI key that Open WebUI restricts to other endpoints is AccessDenied (403, as
    Open WebUI answers it)."""
    if not credential:
        raise NotAuthenticated("Not authenticated")
    age = ctx.directory.mirror_age
    if age is not None and age > ctx.settings.openwebui_stale_s:
        raise unreadable(age)  # whoever it is: a role or a deletion since may not have reached us
    behind = age is not None and age > ctx.settings.openwebui_behind_s
    if credential.startswith("sk-"):
        key_hash = hash_key(credential)
        user_id = ctx.directory.user_for_key(key_hash)
        if user_id is None:
            if behind:  # a key made in Open WebUI since its last read: cannot be told now
                raise unreadable(age or 0.0)
            raise NotAuthenticated("Invalid API key")
        allowed = ctx.directory.key_paths(key_hash)
        if allowed is not None and path is not None and not _allowed(path, allowed):
            raise AccessDenied(
                "This Open WebUI API key may not call this endpoint (Open WebUI restricts its API"
                " keys to the endpoints its admin allowed)"
            )
        user = ctx.directory.user(user_id)
    else:
        user_id = _verify_jwt(secret, credential)
        user = ctx.directory.user(user_id)
        if user is None:
            if behind:  # a user Open WebUI made since its last read: cannot be told now
                raise unreadable(age or 0.0)
            if not ctx.settings.auto_create_users or ctx.directory.external:
                raise NotAuthenticated("Unknown user")
            user = ensure_user(ctx, user_id)
    if user is None:
        raise NotAuthenticated("Unknown user")
    refusal = role_refusal(ctx, user.role)
    if refusal is not None:
        raise NotAuthenticated(refusal)
    return Viewer(user.id, user.role)


def role_refusal(ctx: Context, role: str | None) -> str | None:
    """Why a user of this role may do nothing now, None when the role is admitted: also asked
    for what acts for a user without a request (an alert channel they made)."""
    if role == "pending":
        return "Your account is pending activation"
    if ctx.directory.external and role not in _OPEN_WEBUI_ROLES:
        return "Your account has no role Open WebUI admits"
    return None


def _allowed(path: str, allowed: tuple[str, ...]) -> bool:
    """Open WebUI's rule, as it is: the path is an allowed endpoint or below one (so an empty
    entry, as an empty setting gives, allows every path)."""
    return any(path == p or path.startswith(p + "/") for p in allowed)


def _verify_jwt(secret: str, token: str) -> str:
    try:
        claims = jwt.decode(token, secret, algorithms=_ALGORITHMS, options={"require": []})
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("Invalid token") from exc
    user_id = claims.get("id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 255 or not _encodable(user_id):
        raise NotAuthenticated("Invalid token: no usable user id")
    return user_id


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: JSON allows the escape, UTF-8 does not
        return False
    return True
