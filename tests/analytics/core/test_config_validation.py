"""Settings checked when they are read, in the form the code that uses them takes: DuckDB memory
sizes (what Settings takes, DuckDB 2.0.1 takes too), list settings from the environment as JSON
or comma-separated, and checks across two settings."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from analytics.access.users import bootstrap_admin
from analytics.alerts import egress
from analytics.core.config import Settings
from analytics.core.context import open_context
from tests.factories import SECRET

TAKEN = ["512MB", "2GiB", "75%", "100%", "0.5%", "1.5GB", "512 MB", "1 gib", "16MB", "1TB", ".5GB", "10.5 %"]
REFUSED = ["zzz", "", "512", "512M", "1KB", "0GB", "0%", "150%", "-1GB", "none", "1PB", "1_000MB", "+1GB"]


@pytest.mark.parametrize("value", TAKEN)
def test_a_memory_size_settings_takes_duckdb_takes(value: str) -> None:
    """Every size Settings lets through is one a DuckDB connection takes and runs a query with
    (else the store fails to open, or every ad-hoc query answers 500)."""
    assert Settings(memory_limit=value, sql_memory_limit=value).sql_memory_limit == value
    con = duckdb.connect(config={"memory_limit": value})
    con.execute(f"SET memory_limit = '{value}'")  # as the SQL sandbox sets it
    assert con.execute("SELECT sum(i) FROM range(100000) t(i)").fetchone() == (4999950000,)


@pytest.mark.parametrize("value", REFUSED)
@pytest.mark.parametrize("field", ["memory_limit", "sql_memory_limit"])
def test_a_memory_size_duckdb_would_fail_on_is_refused(field: str, value: str) -> None:
    if field == "memory_limit" and value == "":
        assert Settings(memory_limit="").memory_limit is None  # empty: unset, as it was taken before
        return
    with pytest.raises(ValidationError) as info:
        Settings(**{field: value})
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_checkpoint_threshold_is_a_byte_size() -> None:
    for value in ("256MB", "1GiB", "64KB", "1024"):
        assert Settings(checkpoint_threshold=value).checkpoint_threshold == value
    for value in ("huge", "-1", "1e3MB"):
        with pytest.raises(ValidationError, match="byte size"):
            Settings(checkpoint_threshold=value)


def test_threads_at_least_one() -> None:
    assert Settings(threads=4).threads == 4 and Settings().threads is None
    for value in (0, -1):
        with pytest.raises(ValidationError):
            Settings(threads=value)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("bob", ["bob"]),
        ("bob, carol,,", ["bob", "carol"]),
        ('["bob", "carol"]', ["bob", "carol"]),
        (' ["a,b"]', ["a,b"]),
        ("", []),
    ],
)
def test_list_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, parsed: list[str]
) -> None:
    monkeypatch.setenv("FLOWHISTORY_ADMIN_USER_IDS", raw)
    if "," not in "".join(parsed):  # no host has a comma: the allow list refuses one
        monkeypatch.setenv("FLOWHISTORY_ALERT_WEBHOOK_ALLOW", raw)
    settings = Settings()
    assert settings.admin_user_ids == parsed
    assert settings.alert_webhook_allow == (parsed if "," not in "".join(parsed) else [])
    assert Settings(admin_user_ids=["x"]).admin_user_ids == ["x"]  # a list given in code


def test_a_comma_separated_allow_list_is_the_egress_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHISTORY_ALERT_WEBHOOK_ALLOW", "10.0.0.0/8,hooks.internal")
    egress.AllowList.parse(Settings().alert_webhook_allow)  # a bad entry would raise here


def test_comma_separated_admin_ids_are_made_admins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHISTORY_ADMIN_USER_IDS", "bob, carol")
    settings = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET)
    ctx = open_context(settings)
    try:
        bootstrap_admin(ctx)
        assert {u.id for u in ctx.directory.users() if u.role == "admin"} >= {"bob", "carol"}
    finally:
        ctx.close()


@pytest.mark.parametrize("raw", ['["bob"', "[1, 2]", '{"a": "b"}'])
def test_a_list_setting_that_is_no_list_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """A ValidationError (one line from the CLI), never pydantic-settings' SettingsError."""
    monkeypatch.setenv("FLOWHISTORY_ADMIN_USER_IDS", raw)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert {e["loc"][0] for e in info.value.errors()} == {"admin_user_ids"}


def test_the_list_default_within_the_max() -> None:
    assert Settings(list_limit_default=500).list_limit_default == 500
    assert Settings(list_limit_default=900, list_limit_max=1000).list_limit_default == 900
    with pytest.raises(ValidationError, match="FLOWHISTORY_LIST_LIMIT_DEFAULT"):
        Settings(list_limit_default=900)


def test_the_metrics_port_is_not_the_port() -> None:
    assert Settings(port=8080, metrics_port=9100).metrics_port == 9100
    assert Settings(port=0, metrics_port=9100).metrics_port == 9100
    with pytest.raises(ValidationError, match="port of their own"):
        Settings(port=9100, metrics_port=9100)
