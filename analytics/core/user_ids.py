"""What a user id may be, as plain string rules: the users' registry, a batch item's `user_id`
and the settings that name users (FLOWHISTORY_ADMIN_USER_IDS) all apply them."""

from __future__ import annotations

import re

MAX_LENGTH = 255
# a user id is written into logs and answers: no control characters (a forged log line)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def addressable(user_id: str) -> bool:
    """Can a URL name the id (`/api/v1/users/{id}`, which takes a `/` too)? A client resolves
    `.` and `..` segments away: `..` was created and then never found to change, and a PATCH
    sent "as it is" to `x/../bob` changed bob. No backslash, `?` or `#` either, which a browser's URL
    parser reads as a `/`, a query and a fragment."""
    if any(c in user_id for c in "\\?#"):  # a browser reads `\` as `/`, `?` and `#` end the path
        return False
    # `%2e` is a dot to a browser's URL parser (WHATWG) too: `x/%2e%2e/bob` named bob
    dotted = re.sub("%2e", ".", user_id, flags=re.IGNORECASE)
    return not any(part in (".", "..") for part in dotted.split("/"))


def is_user_id(value: str) -> bool:
    """The whole rule at once, where one message covers it (a group's members)."""
    return 0 < len(value) <= MAX_LENGTH and not CONTROL.search(value) and addressable(value)


def no_control_characters(value: str) -> str:
    """For a pydantic field that names a user (or is written beside one): a batch item's
    `user_id` with a NUL or an escape was stored under an id no user can have."""
    if CONTROL.search(value):
        raise ValueError("must not hold control characters")
    return value


def a_user_id(value: str) -> str:
    """For a pydantic field naming a user (a batch item's `user_id`): the users' rule, as
    create_user applies it. `..` was stored as a run's user, a user no URL can name."""
    no_control_characters(value)
    if not addressable(value):
        raise ValueError(
            "must have no '.' or '..' segment and no \\, ? or # (a user id goes in URLs, which resolve them)"
        )
    return value
