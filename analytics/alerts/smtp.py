"""Email alerts through the admin's SMTP server (smtplib), one connection per message.

Called on the dispatcher's sender threads (analytics/alerts/webhooks.py), never on an event
loop or the writer, like a webhook POST. What an attempt records is the SMTP reply code and the
exception's class, never the server's reply text (as a webhook never records the receiver's
body) and never the password: it is a SecretStr, read only to log in.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import SecretStr

from analytics.core.config import Settings

OK_CODE = 250  # what the server answers a message it accepted (smtplib raises on anything else)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: SecretStr | None
    sender: str
    starttls: bool
    ssl: bool
    timeout_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> SmtpSettings | None:
        """None when no SMTP server is configured (email channels are then refused)."""
        if not s.smtp_host:
            return None
        port = s.smtp_port or (465 if s.smtp_ssl else 587 if s.smtp_starttls else 25)
        sender = s.smtp_from or s.smtp_username or "flowhistory@localhost"
        return cls(
            s.smtp_host,
            port,
            s.smtp_username,
            s.smtp_password,
            sender,
            s.smtp_starttls,
            s.smtp_ssl,
            s.smtp_timeout_s,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    code: int | None  # the SMTP reply code, when the server gave one
    error: str | None  # the exception's class and code; on success, recipients refused, if any


def build(cfg: SmtpSettings, recipients: list[str], subject: str, text: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="flowhistory")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to an alert
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send(cfg: SmtpSettings, msg: EmailMessage, recipients: list[str]) -> Outcome:
    """Deliver `msg` to `recipients`; any failure is an Outcome, never an exception."""
    try:
        client: smtplib.SMTP
        if cfg.ssl:
            client = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout_s, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with client:
            if cfg.starttls:
                client.starttls(context=ssl.create_default_context())
            if cfg.username:
                client.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
            refused = client.send_message(msg, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
        code = min((c for c, _ in exc.recipients.values()), default=None)
        return Outcome(False, code, f"SMTPRecipientsRefused: SMTP {code}")
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, exc.smtp_code, f"{type(exc).__name__}: SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, OSError) as exc:  # refused connection, timeout, TLS, hung up
        return Outcome(False, None, type(exc).__name__)
    if refused:  # some accepted it: a retry would mail those twice
        codes = sorted({c for c, _ in refused.values()})
        return Outcome(
            True, OK_CODE, f"{len(refused)} of {len(recipients)} recipients refused (SMTP {codes[0]})"
        )
    return Outcome(True, OK_CODE, None)
