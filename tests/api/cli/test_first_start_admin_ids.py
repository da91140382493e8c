"""The first start with FLOWHISTORY_ADMIN_USER_IDS set (the README's Open WebUI section sets it).

It made those users admins but no API key at all: no `admin` user, no `admin_api_key`, while the
banner said "sign in with that key", and every CLI command through the running server failed
("no admin API key to ask it with") until the server was stopped and `keys create` run. Now the
key is for the first id listed, written to `admin_api_key` as the `admin` user's was, and the
banner says what there is to sign in with in every case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.access.users import bootstrap_admin
from analytics.core.config import Settings
from analytics.core.context import open_context
from api.app import _banner
from tests.api.cli.test_cli_errors import subprocess_cli
from tests.factories import SECRET
from tests.live_server import LiveServer


def test_the_first_start_makes_a_key_for_the_first_admin_id(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    env = {"FLOWHISTORY_ADMIN_USER_IDS": "bob,carol", "FLOWHISTORY_SCHEDULER_ENABLED": "false"}
    with LiveServer(db, env=env) as server:
        key_file = tmp_path / "admin_api_key"
        assert key_file.exists(), server.stderr()
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        me = httpx.get(f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and (me.json()["id"], me.json()["role"]) == ("bob", "admin"), me.text
        # a CLI command through the running server, with the key the first start saved
        listed = subprocess_cli("users", "list", "--db", str(db))
        assert listed.returncode == 0, listed.stderr
        assert "bob" in listed.stdout and "carol" in listed.stdout
        everyone = httpx.get(f"{server.url}/api/v1/users", headers={"Authorization": f"Bearer {key}"})
        assert {u["id"] for u in everyone.json()} == {"bob", "carol"}, everyone.text  # no user `admin`
        assert server.stop() == 0
    banner = server.stderr()
    assert "created an API key for admin 'bob' (the first of FLOWHISTORY_ADMIN_USER_IDS)" in banner, banner
    assert key in banner and "sign in with that key" in banner, banner


def _bootstrapped(tmp_path: Path, admin_ids: list[str]) -> tuple[Settings, list[Any]]:
    settings = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET, admin_user_ids=admin_ids)
    made = []
    for _ in range(2):  # a first start, then a restart
        ctx = open_context(settings)
        try:
            made.append(bootstrap_admin(ctx))
        finally:
            ctx.close()
    return settings, made


def test_a_restart_makes_no_other_key(tmp_path: Path) -> None:
    settings, made = _bootstrapped(tmp_path, ["bob"])
    first, again = made
    assert first is not None and (first.user_id, first.named) == ("bob", True)
    assert again is None
    assert settings.admin_key_file.read_text().strip() == first.key


def test_without_admin_ids_the_first_start_still_makes_the_user_admin(tmp_path: Path) -> None:
    settings, made = _bootstrapped(tmp_path, [])
    first, again = made
    assert first is not None and (first.user_id, first.named) == ("admin", False)
    assert again is None
    assert settings.admin_key_file.read_text().strip() == first.key


@pytest.mark.parametrize("mode", ["standalone", "openwebui"])
def test_with_no_key_file_the_banner_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    """No `admin_api_key` (removed, or a store whose admin was made with the CLI; in Open WebUI
    mode none is made): the banner said "sign in with that key" all the same."""
    owui = "sqlite:////nowhere/webui.db" if mode == "openwebui" else None
    settings = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET, openwebui_db=owui, port=8123)
    _banner(settings, None)
    banner = capsys.readouterr().err
    assert "sign in with that key" not in banner, banner
    if mode == "openwebui":
        assert "FLOWHISTORY_ADMIN_USER_IDS does not apply" in banner, banner
        assert "FLOWHISTORY_API_KEY set to an Open WebUI admin's API key" in banner, banner
    else:
        assert f"No admin API key in {settings.admin_key_file}" in banner, banner
        assert (
            f"flowhistory keys create <admin id> --db {settings.db_path} > {settings.admin_key_file}"
            in banner
        )
