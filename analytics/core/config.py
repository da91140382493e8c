"""Settings from the environment (prefix FLOWHISTORY_), shared by the server, CLI and notebooks."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    ByteSize,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from analytics.core import user_ids

# DuckDB's memory sizes (2.0.1): a number, then KB, MB, GB, TB (1000^i) or KiB, MiB, GiB, TiB
# (1024^i), any case, spaces allowed; `memory_limit` also takes a share of the RAM, "75%".
# DuckDB takes more (a bare "512M", "none", "-1": no limit) but refuses only when a connection
# is made or a query runs; this is the documented form, checked when the settings are read.
_DUCKDB_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?b|%)\s*", re.IGNORECASE)
_UNIT_BYTES = {
    **{f"{u}b": 1000 ** (i + 1) for i, u in enumerate("kmgt")},
    **{f"{u}ib": 1024 ** (i + 1) for i, u in enumerate("kmgt")},
}
# below a few MB DuckDB cannot open a store or run a query (every one: "Out of Memory Error")
MIN_DUCKDB_MEMORY = 16 * 1000**2


def _duckdb_memory(value: str) -> str:
    """`value` when DuckDB takes it as a memory limit, else a ValueError saying what would do."""
    found = _DUCKDB_SIZE.fullmatch(value)
    if found is None:
        raise ValueError(
            "not a DuckDB memory size: a number and a unit, e.g. 512MB, 2GiB (KB, MB, GB, TB; "
            "KiB, MiB, GiB, TiB), or a share of the RAM, e.g. 75%"
        )
    number, unit = float(found[1]), found[2].lower()
    if unit == "%":
        if not 0 < number <= 100:
            raise ValueError("a share of the RAM must be above 0% and at most 100%")
    elif number * _UNIT_BYTES[unit] < MIN_DUCKDB_MEMORY:
        raise ValueError("too little for DuckDB: at least 16MB")
    return value


def _list_from_env(value: Any) -> Any:
    """A list setting from the environment: a JSON list ('["a", "b"]') or, as is usual for
    variables, comma-separated ("a,b"). pydantic-settings only took JSON, and anything else
    stopped every command with a 100-line traceback (a SettingsError, not a ValidationError)."""
    if not isinstance(value, str):
        return value  # a list given in code
    if value.lstrip().startswith(("[", "{")):  # JSON (an object: refused as not a list)
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a valid JSON list ({exc.msg} at character {exc.pos})") from None
    return [item.strip() for item in value.split(",") if item.strip()]


# a list setting: FLOWHISTORY_X='["a", "b"]' or FLOWHISTORY_X=a,b
EnvList = Annotated[list[str], NoDecode, BeforeValidator(_list_from_env)]

# a host name as a webhook URL's host is matched against it (analytics/alerts/egress.py: the
# URL's host, IDNA-encoded, lower-cased, without a trailing dot): labels of letters, digits,
# `-` and `_`, each 1-63 characters
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _allow_entry_problem(entry: str) -> str | None:
    """Why `entry` of FLOWHISTORY_ALERT_WEBHOOK_ALLOW would never match, or None.

    The egress guard (analytics/alerts/egress.py, AllowList.parse; core may not import it) reads
    an entry as a CIDR block or an address when `ipaddress.ip_network` takes it, else as a host
    name: `127.0.0.0/99`, `300.1.1.1` and `http://hooks.internal/` became host names no URL has,
    allowing nothing and saying nothing. The same reading here, with the host names checked."""
    text = entry.strip()
    if not text:
        return None  # skipped there too
    try:
        ipaddress.ip_network(text.strip("[]"), strict=False)
        return None
    except ValueError:
        pass
    host = text.lower().rstrip(".")
    if "://" in host:
        return f"{entry!r} is a URL: give its host alone, e.g. {_host_of(host)!r}"
    if "/" in host:
        address, prefix = host.split("/", 1)
        try:
            version = ipaddress.ip_address(address.strip("[]")).version
        except ValueError:
            return f"{entry!r} is not a CIDR block: {address!r} is not an address"
        bits = 32 if version == 4 else 128
        if prefix.isdigit() and int(prefix) <= bits:  # then only the brackets stood in the way
            return f"{entry!r}: write a CIDR block without brackets, {address.strip('[]')}/{prefix}"
        return f"{entry!r} is not a CIDR block: /{prefix} is not a prefix length of IPv{version} (0-{bits})"
    if host.rsplit(".", 1)[-1].isdigit():  # a host name's last label is never all digits
        return f"{entry!r} is not an IPv4 address: four numbers 0-255 between dots"
    if ":" in host:
        name, _, port = host.rpartition(":")
        if port.isdigit() and ":" not in name:
            return f"{entry!r}: give the host without a port, {name}"
        return f"{entry!r} is not an IPv6 address"
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return (
            f"{entry!r} is not a host name, address or CIDR block (a host name is letters, digits, "
            "'-' and '_' between dots; a non-ASCII one in its xn-- form)"
        )
    return None


def _host_of(url: str) -> str:
    """The host of a URL someone put in the allow-list, to show what to give instead."""
    authority = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.split(":", 1)[0] or url


MAX_SECONDS = 315_360_000  # ten years: every interval, timeout and grace is shorter


class Settings(BaseSettings):
    # `inf` and `nan` are no setting's value: FLOWHISTORY_SQL_MAX_TIMEOUT_S=inf let a request ask
    # for a time limit past any clock (a 500)
    model_config = SettingsConfigDict(env_prefix="FLOWHISTORY_", extra="ignore", allow_inf_nan=False)

    db_path: Path = Path("data/flowhistory.duckdb")
    host: str = "127.0.0.1"
    # 0: any free port, for servers run in process (tests); `flowhistory serve` needs 1-65535
    port: int = Field(default=8080, ge=0, le=65535)
    # Open WebUI signs its JWTs with this; unset means a random one kept beside the store.
    webui_secret_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEBUI_SECRET_KEY", "FLOWHISTORY_WEBUI_SECRET_KEY"),
    )
    auto_create_users: bool = True
    admin_user_ids: EnvList = Field(default_factory=list)
    # the contract: an image model's base64 data URI, spread one key a character and copied into
    # outputs, makes a single POST tens of MB (a 1.4 MiB image: 54 MB, ~1 GB of RAM while read)
    max_body_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    # slow clients (api/server.py): seconds to finish a request's headers; in every window of
    # body_timeout_s a body must bring body_min_rate * body_timeout_s bytes (at least 1), else
    # 408; idle kept-alive connections close after keep_alive_timeout_s; past max_connections
    # open connections, requests answer 503 (the open-file limit is raised to fit)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    body_min_rate: int = Field(default=1024, ge=0)
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    max_connections: int = Field(default=1000, ge=1)
    page_size: int = Field(default=60, ge=1)
    list_limit_default: int = Field(default=50, ge=1)
    list_limit_max: int = Field(default=500, ge=1)
    batch_max_items: int = Field(default=100_000, ge=1)
    # room kept on the store's disk (<store>.reserve) and released when the disk fills, so that
    # admins can still delete runs (analytics/core/store.py); 0: none
    disk_reserve: ByteSize = ByteSize(64 * 1024**2)
    # DuckDB checkpoints the WAL into the file past this size; larger means faster ingest. A
    # byte size ("256MB", "1GiB"), read by the store (analytics/core/store.py)
    checkpoint_threshold: str = "256MB"
    # an empty price table starts from analytics/cost/prices.json
    seed_prices: bool = True
    # the store's DuckDB limits (unset: DuckDB's own): a memory size ("4GB", "75%"), threads
    memory_limit: str | None = None
    threads: int | None = Field(default=None, ge=1)
    # alerts (analytics/alerts, docs/alerts.md): the scheduled evaluation (0: on demand only);
    # evaluation right after an ingest touching a rule's flows, a burst coalesced over the
    # debounce; webhook timeout, attempts, backoff (first retry delay, doubling up to the max),
    # failed attempts in a row before a channel is disabled, and sender threads
    alert_interval_s: float = Field(default=60.0, ge=0)
    alert_ingest_trigger: bool = True
    alert_ingest_debounce_s: float = Field(default=1.0, ge=0)
    # after an ingest-triggered pass of d seconds, rest factor * d: caps its share of a core (1/10)
    alert_ingest_rest_factor: float = Field(default=9.0, ge=0)
    # ingest-triggered passes judge windows up to this long (0: all); the schedule judges every rule
    alert_ingest_max_window_s: float = Field(default=86400.0, ge=0)
    alert_webhook_timeout_s: float = Field(default=10.0, gt=0)
    alert_webhook_max_attempts: int = Field(default=5, ge=1)
    alert_webhook_backoff_s: float = Field(default=2.0, ge=0)
    alert_webhook_backoff_max_s: float = Field(default=600.0, ge=0)
    alert_channel_max_failures: int = Field(default=10, ge=1)
    alert_webhook_workers: int = Field(default=4, ge=1)
    # hosts, addresses or CIDRs webhooks may reach although not public (loopback, private, ...):
    # comma-separated or a JSON list, e.g. 127.0.0.1,10.0.0.0/8,hooks.internal or
    # '["127.0.0.1", "10.0.0.0/8", "hooks.internal"]' (analytics/alerts/egress.py)
    alert_webhook_allow: EnvList = Field(default_factory=list)
    # email alert channels (analytics/alerts/smtp.py): the SMTP server every email channel sends
    # through (unset: email channels are refused); port default 465 with `smtp_ssl` (TLS from the
    # start), else 587 with `smtp_starttls`, else 25; the login, if any (the password is a
    # SecretStr: never printed); the From address (default: the username, else flowhistory@localhost)
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    # where users reach the dashboard (e.g. https://flowhistory.example.com): Slack and email
    # alerts then link to the rule's flow; unset, they carry no link
    public_url: HttpUrl | None = None
    # retention (analytics/retention): how often the scheduled pass runs (0: on demand only),
    # where deleted runs are archived (default: <data>/archive), and the share of runs a pass
    # must delete before it rewrites the table to give the space back
    retention_interval_s: float = Field(default=3600.0, ge=0)
    archive_dir: Path | None = None
    retention_compact_fraction: float = Field(default=0.2, ge=0, le=1)
    # Parquet exports (analytics/exports, docs/exports.md): a folder (default <data>/exports) or
    # s3://bucket/prefix with the S3 endpoint and credentials; how often the export and its
    # compaction run (0: on demand only), files a partition may hold before compaction merges
    # them, and how long replaced files stay readable for readers that listed them before
    export_url: str | None = None
    export_s3_endpoint: str | None = None
    export_s3_access_key: str | None = None
    export_s3_secret_key: str | None = None
    export_s3_region: str = "us-east-1"
    export_s3_timeout_s: float = Field(default=10.0, gt=0)
    export_interval_s: float = Field(default=300.0, ge=0)
    export_compaction_interval_s: float = Field(default=3600.0, ge=0)
    export_max_files_per_partition: int = Field(default=4, ge=1)
    export_grace_s: float = Field(default=600.0, ge=0)
    # days copied and published at once (a day's COPY uses one core)
    export_workers: int = Field(default=2, ge=1)
    # the server's scheduler (exports, compaction, retention, alerts); off: jobs run on demand only
    scheduler_enabled: bool = True
    # trends' daily rollups: complete days are rolled, dirty ones rebuilt (0: on demand only)
    rollup_interval_s: float = Field(default=300, ge=0)
    # ad-hoc SQL over the exports (analytics/exports/sql_sandbox.py): each query's DuckDB limits, and
    # the most rows and seconds a caller may ask for
    sql_memory_limit: str = "512MB"
    sql_threads: int = Field(default=1, ge=1)
    sql_max_rows: int = Field(default=100_000, ge=1)
    sql_max_timeout_s: float = Field(default=60.0, gt=0, le=86400)
    # each query runs in one of `sql_workers` worker processes (unset: 2, or 1 on a one-core
    # machine), its address space capped (RLIMIT_AS: "2GiB", "512MB"; DuckDB and Python take about
    # 0.4 GB of it), killed and replaced past the query's time limit (analytics/exports/sql_worker.py)
    sql_worker_memory: ByteSize = ByteSize(2 * 1024**3)
    # the most an ad-hoc query's answer may hold (as Arrow) to come back through the server,
    # which holds it about three times over while it becomes JSON; `flowhistory sql --output`
    # streams any size
    sql_max_answer_bytes: ByteSize = Field(default=ByteSize(64 * 1024**2), ge=1024)
    sql_workers: int | None = Field(default=None, ge=1)
    # where `POST /api/v1/admin/backup` (and `flowhistory backup` while a server runs) writes
    # backups (default <data>/backups; analytics/core/backup.py)
    backup_dir: Path | None = None

    # observability (api/observability): log lines as text or one JSON object each, their level,
    # one access line per request; Prometheus /metrics (admin-only on the API's port), and with
    # `metrics_port` also served without auth on that port of the same host
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True
    metrics_enabled: bool = True
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Open WebUI mode (analytics/openwebui): its database URL (sqlite:////path/webui.db or
    # postgresql://...), read-only; users, roles, API keys, groups and flows then come from it.
    # It is polled every `openwebui_poll_s` (a change takes effect within about twice that), and
    # the runs of a flow gone from it are deleted `openwebui_orphan_grace_s` after it went
    # (invisible at once), by a job every `openwebui_orphan_interval_s`
    openwebui_db: str | None = None
    openwebui_poll_s: float = Field(default=1.0, gt=0)
    openwebui_orphan_grace_s: float = Field(default=86400.0, ge=0)
    openwebui_orphan_interval_s: float = Field(default=300.0, ge=0)
    # how old (seconds since the last successful poll) the mirror of Open WebUI's users, groups
    # and flows may get while Open WebUI cannot be read before every authenticated request
    # answers 503 rather than trusting it (a user deleted or demoted there keeps no access
    # for longer); never less than three polls (analytics/access/auth.py)
    openwebui_max_stale_s: float = Field(default=300.0, gt=0)
    # how long a read of Open WebUI's PostgreSQL (or the import's connect) may take before it
    # fails: a stalled connection is dropped and the next poll opens another
    openwebui_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Whether Open WebUI's API keys (`user.api_key`) are accepted when Open WebUI's saved config
    # has no `auth.api_key.enable` (it then follows its ENABLE_API_KEY, default true): set it
    # to the same value as Open WebUI's ENABLE_API_KEY. flowhistory's own keys are not affected.
    openwebui_api_keys: bool = True

    @field_validator(
        "header_timeout_s",
        "body_timeout_s",
        "alert_interval_s",
        "alert_ingest_debounce_s",
        "alert_ingest_max_window_s",
        "alert_webhook_timeout_s",
        "alert_webhook_backoff_s",
        "alert_webhook_backoff_max_s",
        "smtp_timeout_s",
        "retention_interval_s",
        "export_s3_timeout_s",
        "export_interval_s",
        "export_compaction_interval_s",
        "export_grace_s",
        "rollup_interval_s",
        "openwebui_poll_s",
        "openwebui_orphan_grace_s",
        "openwebui_orphan_interval_s",
        "openwebui_max_stale_s",
    )
    @classmethod
    def _seconds_a_clock_can_hold(cls, value: float) -> float:
        """`1e300` seconds is finite, and past any clock: the scheduler's first due time overflowed
        and `serve` failed to start with a traceback."""
        if value > MAX_SECONDS:
            raise ValueError(f"must be at most {MAX_SECONDS:,} seconds (10 years)")
        return value

    @field_validator("alert_webhook_allow")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        """Every entry a host, an address or a CIDR block: a bad one allowed nothing, silently."""
        problems = [why for why in map(_allow_entry_problem, value) if why is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("admin_user_ids")
    @classmethod
    def _admin_ids_are_user_ids(cls, value: list[str]) -> list[str]:
        """The users' own rule: `x/../y` or a tab passed here and failed the start, when the
        admin was made, with a traceback and exit 3."""
        problems = []
        for uid in value:
            try:
                if len(uid) > user_ids.MAX_LENGTH:
                    raise ValueError(f"must be at most {user_ids.MAX_LENGTH} characters")
                user_ids.a_user_id(uid)
            except ValueError as exc:
                problems.append(f"{uid!r} {exc}")
        if problems:
            raise ValueError("a user id " + "; ".join(problems))
        return value

    @field_validator("memory_limit", "sql_memory_limit")
    @classmethod
    def _duckdb_memory_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        """DuckDB only refused a bad size when a connection was made or a query ran: the server
        then failed to start with a traceback, or answered every ad-hoc query 500."""
        if value is None or (info.field_name == "memory_limit" and not value.strip()):
            return None  # FLOWHISTORY_MEMORY_LIMIT= (empty) was taken as unset: DuckDB's own
        return _duckdb_memory(value)

    @field_validator("checkpoint_threshold")
    @classmethod
    def _checkpoint_bytes(cls, value: str) -> str:
        """The store reads it as a byte size when it opens: checked here so that a bad one stops
        every command in one line, not the server's start in a traceback. Empty: DuckDB's own."""
        if not value.strip():
            return value
        try:
            TypeAdapter(ByteSize).validate_python(value)
        except ValidationError:
            raise ValueError("not a byte size, e.g. 256MB, 1GiB") from None
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> Settings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("FLOWHISTORY_SMTP_SSL and FLOWHISTORY_SMTP_STARTTLS: set one of them, not both")
        return self

    @model_validator(mode="after")
    def _list_default_within_max(self) -> Settings:
        """A default above the cap made every list request without `limit` answer 422."""
        if self.list_limit_default > self.list_limit_max:
            raise ValueError(
                f"FLOWHISTORY_LIST_LIMIT_DEFAULT ({self.list_limit_default}) is above "
                f"FLOWHISTORY_LIST_LIMIT_MAX ({self.list_limit_max}): lower it or raise the max"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_of_its_own(self) -> Settings:
        """The metrics server bound the API's port first, and the API then failed to bind it as
        if another process held it. (`serve --port` is checked when the metrics server starts.)"""
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(
                f"FLOWHISTORY_METRICS_PORT and FLOWHISTORY_PORT are both {self.port}: the metrics "
                "need a port of their own (or leave FLOWHISTORY_METRICS_PORT unset: /metrics is "
                "also on the API's port, for admins)"
            )
        return self

    @property
    def openwebui_behind_s(self) -> float:
        """Open WebUI mode: the mirror is behind once no poll has succeeded for this long (three
        polls, at least 3 s); what it lacks is then answered 503, not as missing."""
        return max(3 * self.openwebui_poll_s, 3.0)

    @property
    def openwebui_stale_s(self) -> float:
        """Open WebUI mode: the oldest mirror requests are answered from (`openwebui_max_stale_s`,
        never less than `openwebui_behind_s`)."""
        return max(self.openwebui_max_stale_s, self.openwebui_behind_s)

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin_api_key"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / ".webui_secret_key"

    @property
    def backups_dir(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def jobs_status_file(self) -> Path:
        return self.data_dir / "jobs.json"
