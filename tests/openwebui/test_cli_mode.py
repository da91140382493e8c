"""Commands run without a server see Open WebUI's users and flows when FLOWHISTORY_OPENWEBUI_DB is
set: one sync when the store opens, so they know the same identities as the server."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analytics.core.config import Settings
from api.app import create_app
from api.cli import app
from tests.factories import SECRET
from tests.openwebui.webui_db import WebUIDb


def cli(store: Path, url: str, *args: str) -> Result:
    env = {"WEBUI_SECRET_KEY": SECRET, "FLOWHISTORY_OPENWEBUI_DB": url, "COLUMNS": "200", "NO_COLOR": "1"}
    return CliRunner().invoke(app, [*args, "--db", str(store)], env=env)


def test_keys_create_knows_open_webuis_users(webui_db: WebUIDb, tmp_path: Path) -> None:
    webui_db.add_user("boss", "admin")
    webui_db.add_user("alice")
    store = tmp_path / "store.duckdb"

    made = cli(store, webui_db.url, "keys", "create", "alice")
    assert made.exit_code == 0, (made.output, made.exception)
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-")

    listed = cli(store, webui_db.url, "users", "list")
    assert listed.exit_code == 0, listed.output
    assert {"alice", "boss"} <= set(listed.stdout.split())

    ghost = cli(store, webui_db.url, "keys", "create", "ghost")  # not in Open WebUI: refused
    assert ghost.exit_code == 1 and "ghost" in ghost.stderr

    managed = cli(store, webui_db.url, "users", "create", "carol")
    assert managed.exit_code == 1 and "managed by Open WebUI" in " ".join(managed.stderr.split())

    # the server in the same mode accepts the key as alice's
    settings = Settings(db_path=store, webui_secret_key=SECRET, port=0, openwebui_db=webui_db.url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and me.json()["id"] == "alice"


def test_an_unreadable_open_webui_database_is_a_clear_error(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'webui.db'}"
    result = cli(tmp_path / "store.duckdb", missing, "users", "list")
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Open WebUI" in " ".join(result.stderr.split())
