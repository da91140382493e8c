"""Logging for the server: one setup, text or JSON lines, library warnings logged once each.

JSON mode writes one object per line (ts, level, logger, message, and an access line's fields) so
a log shipper needs no parsing rules. Library warnings (DuckDB's, pyarrow's) go through logging
and each distinct one is written once per process: a warning raised by a query would otherwise
be printed on every request that runs it.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson

from analytics.core.config import Settings

ACCESS_LOGGER = "flowhistory.access"
# what an access record carries (set by api/observability/middleware.py as `extra`)
ACCESS_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "user_id")
_MAX_DISTINCT_WARNINGS = 1000
# control characters (C0, DEL, C1) and the Unicode line separators: a user id or a path that
# holds one must not start a forged line in a text log
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TextFormatter(logging.Formatter):
    """One line per record: control characters in the message are written as escapes, and so
    are the line breaks of a record's traceback (its ~90 lines broke the README's promise, and a
    log shipper's one-record-a-line reading)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _CONTROL.sub(_escaped, record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\x0a")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ACCESS_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class OncePerWarning(logging.Filter):
    """Passes the first record of each distinct warning text (category, place, message)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage()
        if key in self.seen:
            return False
        if len(self.seen) < _MAX_DISTINCT_WARNINGS:
            self.seen.add(key)
        return True


def configure_logging(settings: Settings) -> None:
    """The server's logging: one stderr handler on the root logger, in the chosen format;
    uvicorn's loggers go through it (its own access log stays off: ours has the route and
    user). Calling it again replaces the handler rather than adding a second."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name("flowhistory")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "flowhistory"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its startup chatter: ours says it
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request's whole URL at INFO: a channel's URL is its credential (a Slack
    # webhook) or carries one (?token=); deliveries are logged by the alerts code, without it
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).disabled = not settings.access_log
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")
    if not any(isinstance(f, OncePerWarning) for f in py_warnings.filters):
        py_warnings.addFilter(OncePerWarning())
    # Python's own once-per-place registry is reset whenever anything changes the warning
    # filters; the filter above is what dedupes, so every occurrence must reach it
    warnings.simplefilter("always", UserWarning)
