"""Settings that were accepted at start and then failed later, or failed every command with a
traceback: each is now refused before any command runs, in one line, exit 2 (README, "CLI").

- DuckDB sizes and threads (FLOWHISTORY_SQL_MEMORY_LIMIT=zzz made every ad-hoc query a 500 or a
  traceback; FLOWHISTORY_MEMORY_LIMIT=banana, _CHECKPOINT_THRESHOLD=huge, _THREADS=-1 made
  `serve` exit 1 with a 70-line traceback);
- list settings that were not JSON (FLOWHISTORY_ADMIN_USER_IDS=bob: a 127-line traceback from
  pydantic-settings, exit 1): comma-separated lists are taken, bad JSON is one line;
- FLOWHISTORY_LIST_LIMIT_DEFAULT above _MAX (every list request without `limit` answered 422);
- FLOWHISTORY_METRICS_PORT equal to FLOWHISTORY_PORT, and a busy metrics port at `serve` (a
  traceback escaped on one line that never named the setting); a busy API port (uvicorn's two
  lines, exit 3): now one line naming the setting or option, exit 1;
- FLOWHISTORY_ALERT_WEBHOOK_ALLOW entries that can never match (`127.0.0.0/99`, `300.1.1.1`, a
  URL): taken for host names, they allowed nothing and nothing said so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field

from analytics.core.config import Settings
from api.cli import common
from tests.api.cli.test_cli_errors import invoke, one_error_line, subprocess_cli
from tests.live_server import free_port

BAD_DUCKDB_SETTINGS = [
    ("FLOWHISTORY_SQL_MEMORY_LIMIT", "zzz", "memory size"),
    ("FLOWHISTORY_SQL_MEMORY_LIMIT", "0%", "above 0%"),
    ("FLOWHISTORY_MEMORY_LIMIT", "banana", "memory size"),
    ("FLOWHISTORY_MEMORY_LIMIT", "150%", "at most 100%"),
    ("FLOWHISTORY_MEMORY_LIMIT", "1KB", "at least 16MB"),
    ("FLOWHISTORY_MEMORY_LIMIT", "512", "memory size"),
    ("FLOWHISTORY_CHECKPOINT_THRESHOLD", "huge", "byte size"),
    ("FLOWHISTORY_THREADS", "-1", "greater than or equal to 1"),
    ("FLOWHISTORY_THREADS", "0", "greater than or equal to 1"),
    # not DuckDB's, refused the same way: a time limit past any clock was a 500 for 1e10
    ("FLOWHISTORY_SQL_MAX_TIMEOUT_S", "inf", "finite number"),
    ("FLOWHISTORY_SQL_MAX_TIMEOUT_S", "1e10", "less than or equal to 86400"),
    ("FLOWHISTORY_ALERT_INTERVAL_S", "nan", "finite number"),
    # finite, and past any clock: `serve` failed to start with an OverflowError
    ("FLOWHISTORY_EXPORT_INTERVAL_S", "1e300", "at most 315,360,000 seconds"),
    ("FLOWHISTORY_RETENTION_INTERVAL_S", "1e308", "at most 315,360,000 seconds"),
]


def refused(done_stderr: str, *parts: str) -> str:
    line = one_error_line(done_stderr)
    for part in parts:
        assert part in line, line
    assert "Traceback" not in line and "Value error" not in line, line
    return line


# -- 1. DuckDB sizes and threads ---------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "why"), BAD_DUCKDB_SETTINGS)
def test_a_bad_duckdb_setting_is_refused_by_every_command(
    tmp_path: Path, variable: str, value: str, why: str
) -> None:
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env={variable: value})
    assert done.exit_code == 2, (done.output, done.exception)
    assert isinstance(done.exception, SystemExit), done.exception
    refused(done.stderr, f"{variable}={value}:", why)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_sql_memory_limit_stops_the_sql_command_not_its_query(tmp_path: Path) -> None:
    """`flowhistory sql 'select 1'` was a traceback: DuckDB's "Memory must have a number"."""
    done = invoke(
        "sql", "select 1", "--db", str(tmp_path / "s.duckdb"), env={"FLOWHISTORY_SQL_MEMORY_LIMIT": "zzz"}
    )
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, "FLOWHISTORY_SQL_MEMORY_LIMIT=zzz:", "512MB")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLOWHISTORY_MEMORY_LIMIT", "banana"),
        ("FLOWHISTORY_CHECKPOINT_THRESHOLD", "huge"),
        ("FLOWHISTORY_THREADS", "-1"),
    ],
)
def test_serve_refuses_a_bad_duckdb_setting_in_one_line(tmp_path: Path, variable: str, value: str) -> None:
    db = tmp_path / "s.duckdb"
    done = subprocess_cli("serve", "--db", str(db), "--port", str(free_port()), env={variable: value})
    assert done.returncode == 2, done.stderr
    refused(done.stderr, f"{variable}={value}:")
    assert not db.exists()


# -- 2. list settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["FLOWHISTORY_ADMIN_USER_IDS", "FLOWHISTORY_ALERT_WEBHOOK_ALLOW"])
def test_a_list_setting_may_be_comma_separated(tmp_path: Path, variable: str) -> None:
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env={variable: "bob"})
    assert done.exit_code == 1, (done.output, done.exception)  # past the settings: no store there
    assert "there is no store" in one_error_line(done.stderr)


@pytest.mark.parametrize("variable", ["FLOWHISTORY_ADMIN_USER_IDS", "FLOWHISTORY_ALERT_WEBHOOK_ALLOW"])
def test_a_list_setting_in_broken_json_is_one_line(tmp_path: Path, variable: str) -> None:
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env={variable: '["bob"'})
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, variable, "JSON list")


def test_a_value_pydantic_settings_cannot_decode_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other complex setting a later change adds without the comma form: pydantic-settings
    raises a SettingsError (not a ValidationError), which was a 100-line traceback."""

    class WithAJsonSetting(Settings):
        extra_map: dict[str, int] = Field(default_factory=dict)

    monkeypatch.setattr(common, "Settings", WithAJsonSetting)
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env={"FLOWHISTORY_EXTRA_MAP": "a=1"})
    assert done.exit_code == 2, (done.output, done.exception)
    line = refused(done.stderr, "FLOWHISTORY_EXTRA_MAP: cannot be read")
    assert "a=1" not in line  # the value is not echoed (it could be a secret)


@pytest.mark.parametrize(
    ("value", "entry", "why"),
    [
        ("127.0.0.0/99", "127.0.0.0/99", "/99 is not a prefix length of IPv4 (0-32)"),
        ("300.1.1.1", "300.1.1.1", "not an IPv4 address"),
        ("http://hooks.internal/", "http://hooks.internal/", "give its host alone, e.g. 'hooks.internal'"),
        ("10.0.0.0/8,hooks.internal:8080", "hooks.internal:8080", "without a port"),
        ("10.0.0.0/8, bad host", "bad host", "not a host name, address or CIDR block"),
        ('["[fd00::]/8"]', "[fd00::]/8", "without brackets, fd00::/8"),
    ],
)
def test_an_allow_list_entry_that_can_never_match_is_refused(
    tmp_path: Path, value: str, entry: str, why: str
) -> None:
    """The egress guard took any entry it could not read as an address or CIDR block for a host
    name: `127.0.0.0/99` allowed nothing, and nothing said so."""
    done = invoke(
        "users", "list", "--db", str(tmp_path / "s.duckdb"), env={"FLOWHISTORY_ALERT_WEBHOOK_ALLOW": value}
    )
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, "FLOWHISTORY_ALERT_WEBHOOK_ALLOW=", repr(entry), why)
    assert list(tmp_path.iterdir()) == []


def test_every_kind_of_allow_list_entry_is_still_taken() -> None:
    allow = ["10.0.0.0/8", "10.1.2.3/8", "127.0.0.1", "::1", "[::1]", "fd00::/8", "hooks.internal"]
    allow += ["localhost", "Hooks_1.Internal.", "xn--bcher-kva.example", "169.254.169.254"]
    assert Settings(alert_webhook_allow=allow).alert_webhook_allow == allow


# -- 3. list limits --------------------------------------------------------------------------------------


def test_a_list_default_above_the_max_is_refused(tmp_path: Path) -> None:
    done = invoke(
        "users", "list", "--db", str(tmp_path / "s.duckdb"), env={"FLOWHISTORY_LIST_LIMIT_DEFAULT": "900"}
    )
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, "FLOWHISTORY_LIST_LIMIT_DEFAULT (900)", "FLOWHISTORY_LIST_LIMIT_MAX (500)")
    env = {"FLOWHISTORY_LIST_LIMIT_DEFAULT": "900", "FLOWHISTORY_LIST_LIMIT_MAX": "1000"}
    assert invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env=env).exit_code == 1  # no store


# -- 4. the metrics port -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{"FLOWHISTORY_METRICS_PORT": "8080"}, {"FLOWHISTORY_PORT": "9100", "FLOWHISTORY_METRICS_PORT": "9100"}],
)
def test_a_metrics_port_equal_to_the_port_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env=env)
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, "FLOWHISTORY_METRICS_PORT", "FLOWHISTORY_PORT", env["FLOWHISTORY_METRICS_PORT"])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process (here: a listening socket) holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_serve_with_a_busy_metrics_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    """It was two log lines (a CRITICAL and uvicorn's "Application startup failed"), exit 3."""
    db = tmp_path / "s.duckdb"
    done = subprocess_cli(
        "serve", "--db", str(db), "--port", str(free_port()), env={"FLOWHISTORY_METRICS_PORT": str(busy_port)}
    )
    assert done.returncode == 1, done.stderr
    line = refused(
        done.stderr,
        f"FLOWHISTORY_METRICS_PORT={busy_port}:",
        f"127.0.0.1:{busy_port}: address already in use",
    )
    assert "choose another port" in line
    assert not (tmp_path / "server.json").exists()
    assert not (tmp_path / "admin_api_key").exists()  # nothing of the app's startup ran


@pytest.mark.parametrize("how", ["--port", "FLOWHISTORY_PORT"])
def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path, busy_port: int, how: str) -> None:
    """uvicorn bound the port only after the app's startup (the first start's admin and key, the
    jobs): a port in use was uvicorn's "[Errno 98] ..." and the shutdown's lines, exit 3."""
    db = tmp_path / "s.duckdb"
    if how == "--port":
        done = subprocess_cli("serve", "--db", str(db), "--port", str(busy_port))
        named = f"--port {busy_port}:"
    else:
        done = subprocess_cli("serve", "--db", str(db), env={"FLOWHISTORY_PORT": str(busy_port)})
        named = f"FLOWHISTORY_PORT={busy_port}:"
    assert done.returncode == 1, done.stderr
    refused(done.stderr, named, f"127.0.0.1:{busy_port}: address already in use by another process")
    assert not (tmp_path / "server.json").exists()
    assert not (tmp_path / "admin_api_key").exists()


def test_serve_port_option_equal_to_the_metrics_port(tmp_path: Path) -> None:
    """`serve --port` is not a setting Settings sees: the metrics server refused it when it
    started (two log lines, exit 3), before it bound the port the API then failed to bind "as
    if another process held it". Now one line, exit 2, as the same two settings are."""
    port = free_port()
    done = subprocess_cli(
        "serve",
        "--db",
        str(tmp_path / "s.duckdb"),
        "--port",
        str(port),
        env={"FLOWHISTORY_METRICS_PORT": str(port)},
    )
    assert done.returncode == 2, done.stderr
    refused(done.stderr, f"FLOWHISTORY_METRICS_PORT={port} is also the API's port (--port {port})")


@pytest.mark.parametrize(
    ("value", "entry", "why"),
    [
        ("zed,x/../y", "x/../y", "no '.' or '..' segment"),
        ("a\tb", "a\tb", "control characters"),
        ("x" * 256, "x" * 256, "at most 255 characters"),
    ],
)
def test_an_admin_id_no_user_may_have_is_refused_in_one_line(
    tmp_path: Path, value: str, entry: str, why: str
) -> None:
    """`serve` took it and failed its start making the admin: a 7 KB traceback, exit 3, even on a
    store that had started before."""
    done = invoke(
        "users", "list", "--db", str(tmp_path / "s.duckdb"), env={"FLOWHISTORY_ADMIN_USER_IDS": value}
    )
    assert done.exit_code == 2, (done.output, done.exception)
    refused(done.stderr, "FLOWHISTORY_ADMIN_USER_IDS=", repr(entry), why)
    assert list(tmp_path.iterdir()) == []
