"""An invalid setting is refused in one line that never echoes a secret."""

from __future__ import annotations

from pathlib import Path

from tests.api.cli.test_cli_errors import invoke, one_error_line

SECRETS = {
    "WEBUI_SECRET_KEY": "supersecretXYZ",
    "FLOWHISTORY_EXPORT_S3_SECRET_KEY": "s3secretABC",
    "FLOWHISTORY_SMTP_PASSWORD": "smtppwQQQ",
}


def test_a_check_across_settings_names_no_secret(tmp_path: Path) -> None:
    """A check of two settings together (STARTTLS and SSL) printed its input: every setting,
    the secret key, the SMTP password and the S3 secret among them, into the service's journal."""
    env = {**SECRETS, "FLOWHISTORY_SMTP_STARTTLS": "true", "FLOWHISTORY_SMTP_SSL": "true"}
    done = invoke("users", "list", "--db", str(tmp_path / "s.duckdb"), env=env)
    assert done.exit_code == 2
    line = one_error_line(done.stderr)
    assert "not both" in line, line
    assert not [s for s in SECRETS.values() if s in done.output + done.stderr], line


def test_an_invalid_secret_setting_is_named_but_not_shown(tmp_path: Path) -> None:
    done = invoke(
        "users",
        "list",
        "--db",
        str(tmp_path / "s.duckdb"),
        env={"FLOWHISTORY_OPENWEBUI_DB": "mysql://u:pw-XYZ@h/db"},
    )
    assert done.exit_code == 2
    line = one_error_line(done.stderr)
    assert "openwebui_db" in line.lower() and "pw-XYZ" not in line, line
