"""The channel forms: three kinds, and what each needs, refused with the bad field named.

- `webhook` (the default, so clients written before kinds keep working): `url` + `secret`,
  JSON POSTs signed with HMAC-SHA256 (analytics/alerts/webhooks.py).
- `slack`: a Slack-compatible incoming webhook `url`, `https://` unless the admin's allow-list
  names the host; no secret (Slack does not verify one), so the URL is the secret.
- `email`: `recipients`, sent through the admin's SMTP server (analytics/alerts/smtp.py).

A field that its kind does not use is refused rather than ignored: a caller who sends a secret
to a Slack channel believes it is checked somewhere. Cross-field checks run as validators of the
later field (with `validate_default`, so a missing field is checked too): the 422 names it.
"""

from __future__ import annotations

import ipaddress
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from analytics.alerts import egress
from analytics.core.config import Settings
from analytics.core.errors import InvalidInput
from analytics.core.form_fields import KEEP, keep, not_blank, refuse_null

MAX_RECIPIENTS = 20
# spaces alone are no name: they passed min_length=1, a channel listed with nothing to tell it by
ChannelName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(not_blank)]


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


def check_address(value: str) -> str:
    """One plain address (`ops@example.com`): no display name, no line breaks, ASCII, a dotted
    domain. The standard library's RFC 5322 parser decides what an address is."""
    text = value.strip()
    if not text.isascii() or len(text) > 254:
        raise ValueError(f"{value!r} is not an email address (plain ASCII, at most 254 characters)")
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"{value!r} is not an email address") from exc
    if address.addr_spec != text or "." not in address.domain.strip(".") or not address.username:
        raise ValueError(f"{value!r} is not an email address (name@example.com)")
    if "[" in address.domain:  # root@[10.0.0.1]: mail to a host by its address, as root@localhost is
        raise ValueError(f"{value!r} names a host by its address: give a domain (name@example.com)")
    return text


def _check_recipients(value: list[str] | None, kind: ChannelKind | None) -> list[str] | None:
    if kind != ChannelKind.EMAIL:
        if value is not None:
            raise ValueError(f"a {kind} channel has no recipients; an email channel has")
        return None
    if not value:
        raise ValueError("an email channel needs at least one recipient")
    # the domain is case-insensitive, the local part may not be (RFC 5321): only the domain is folded
    checked = [
        f"{local}@{domain.lower()}" for local, domain in (check_address(v).rsplit("@", 1) for v in value)
    ]
    return list(dict.fromkeys(checked))


def _check_url(value: HttpUrl | None, kind: ChannelKind | None) -> HttpUrl | None:
    if kind == ChannelKind.EMAIL:
        if value is not None:
            raise ValueError("an email channel has no URL: it sends to its recipients")
        return None
    if value is None and kind is not None:
        raise ValueError(f"a {kind} channel needs a URL")
    if value is not None and value.port == 0:  # read as "no port": sent to 80 or 443 instead
        raise ValueError("port 0 is not a port a receiver listens on: give 1-65535, or none")
    return value


def _check_secret(value: str | None, kind: ChannelKind | None) -> str | None:
    if kind in (ChannelKind.SLACK, ChannelKind.EMAIL):
        if value is not None:
            raise ValueError(f"a {kind} channel is not signed: it takes no secret")
        return None
    if value is None and kind is not None:
        raise ValueError("a webhook channel needs a secret (the HMAC key, at least 16 characters)")
    return value


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind = Field(default=ChannelKind.WEBHOOK, description="webhook (default), slack or email")
    name: ChannelName
    url: HttpUrl | None = Field(default=None, validate_default=True, description="webhook and slack")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=512,
        validate_default=True,
        description="webhook: the HMAC key, at least 16 characters",
    )
    recipients: list[str] | None = Field(
        default=None,
        max_length=MAX_RECIPIENTS,
        validate_default=True,
        description="email: addresses to send to",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: HttpUrl | None, info: ValidationInfo) -> HttpUrl | None:
        return _check_url(value, info.data.get("kind"))

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_secret(value, info.data.get("kind"))

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_recipients(value, info.data.get("kind"))


class ChannelUpdate(BaseModel):
    """Changes to a channel of any kind; its kind itself does not change (delete and create).
    A field left out is kept; none can be cleared, so `null` is refused naming it (it answered
    200 as "no change"), and `enabled` is a JSON boolean (`"off"` was read as false, `1` as true)."""

    model_config = ConfigDict(extra="forbid")

    name: ChannelName | None = KEEP
    url: HttpUrl | None = KEEP
    secret: str | None = keep(min_length=16, max_length=512)
    recipients: list[str] | None = keep(max_length=MAX_RECIPIENTS)
    enabled: StrictBool | None = keep(description="true re-enables a disabled channel")

    _no_null = field_validator("name", "url", "secret", "recipients", "enabled", mode="before")(refuse_null)


def check_destination(form: ChannelCreate, settings: Settings) -> None:
    """What needs the server's settings: where a URL may go (422 on `url`, saying why) and,
    for email, that an SMTP server is configured (422 on `kind`)."""
    allow = egress.AllowList.parse(settings.alert_webhook_allow)
    if form.kind == ChannelKind.EMAIL:
        if not settings.smtp_host:
            raise InvalidInput(
                "kind: email channels need an SMTP server, and none is configured (the admin sets"
                " FLOWHISTORY_SMTP_HOST)",
                field="kind",
            )
        return
    url = str(form.url)
    if form.kind == ChannelKind.SLACK:
        require_https(url, allow)
    egress.resolve(url, allow)


def require_https(url: str, allow: egress.AllowList) -> None:
    """A Slack URL carries its own credential in the path: it travels only over TLS, unless the
    admin's allow-list names the host (a receiver inside the network, or a test's)."""
    parsed = HttpUrl(url)
    if parsed.scheme == "https":
        return
    host = (parsed.host or "").strip("[]").lower().rstrip(".")
    if host in allow.hosts or _allowed_literal(host, allow):
        return
    raise egress.EgressRefused(
        "a slack channel's URL is https:// (it carries the channel's credential), unless an admin"
        f" names the host in {egress.ALLOW_SETTING}"
    )


def _allowed_literal(host: str, allow: egress.AllowList) -> bool:
    try:
        return allow.allows(ipaddress.ip_address(host))
    except ValueError:
        return False


def stored_fields(form: ChannelCreate) -> dict[str, Any]:
    """The columns a form fills: an email channel has no URL or secret (empty strings)."""
    return {
        "kind": form.kind.value,
        "url": str(form.url) if form.url is not None else "",
        "secret": form.secret or "",
        "config": {"recipients": form.recipients} if form.recipients is not None else None,
    }
