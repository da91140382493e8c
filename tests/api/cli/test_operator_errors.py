"""What an outside tester, following the README as a new operator, found the CLI to do against it:

- `token USER --db <a mistyped path>` made that folder and a new random secret there, and printed
  a token no server accepts (exit 0);
- bad values exited 1 (the library refusing them) instead of 2 with typer's one line naming the
  option: `users create x --role god`, `users set-role bob god`, `cleanup F --keep -1` (whose
  message named `keep_count`), and every other option with a range or a set of choices;
- `cleanup` of an unknown flow through a running server printed the server's words ("Flow not
  found", a bare "Not Found" for an id with a `/`), not the stopped store's;
- `db upgrade --to 5` on a store at schema 12 printed `current: 12`, exit 0, as if done.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.access.users import ROLES
from analytics.core import migrations
from api.cli.admin import Role
from tests.api.cli.test_cli_errors import invoke, one_error_line, subprocess_cli
from tests.live_server import LiveServer


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "store.duckdb"
    made = invoke("users", "create", "admin", "--role", "admin", "--db", str(db))
    assert made.exit_code == 0, made.output
    return db


# -- token on a path with neither a store nor a secret -----------------------------------------------


def test_token_on_a_mistyped_db_refuses_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "x.duckdb"
    done = invoke("token", "bob", "--db", str(typo), env={"WEBUI_SECRET_KEY": None})
    assert done.exit_code == 1, (done.output, done.exception)
    line = one_error_line(done.stderr)
    assert f"there is no store at {typo}" in line and "WEBUI_SECRET_KEY" in line, line
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_token_still_signs_with_a_secret_beside_the_store_or_from_the_environment(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / ".webui_secret_key").write_text("kept-beside-the-store")
    beside = invoke("token", "bob", "--db", str(folder / "x.duckdb"), env={"WEBUI_SECRET_KEY": None})
    assert beside.exit_code == 0 and beside.stdout.count(".") == 2, beside.output
    assert sorted(p.name for p in folder.iterdir()) == [".webui_secret_key"]
    env_secret = invoke("token", "bob", "--db", str(tmp_path / "none" / "x.duckdb"))  # ENV sets the secret
    assert env_secret.exit_code == 0 and env_secret.stdout.count(".") == 2, env_secret.output
    assert not (tmp_path / "none").exists()


# -- bad values: exit 2, one line naming the option ---------------------------------------------------


def test_the_role_choice_is_the_librarys() -> None:
    assert tuple(Role) == ROLES


@pytest.mark.parametrize(
    ("args", "named", "why"),
    [
        (["users", "create", "x", "--role", "god"], "'--role'", "'admin', 'user', 'pending'"),
        (["users", "set-role", "admin", "god"], "'ROLE'", "'admin', 'user', 'pending'"),
        (["cleanup", "F", "--keep", "-1"], "'--keep'", "greater than or equal to 0"),
        (["db", "downgrade", "--steps", "0"], "'--steps'", "greater than or equal to 1"),
        (["db", "upgrade", "--to", "-1"], "'--to'", "greater than or equal to 0"),
        (["db", "upgrade", "--to", str(migrations.head() + 1)], "--to", f"head is {migrations.head()}"),
        (["retention", "dry-run", "--ids", "-1"], "'--ids'", "greater than or equal to 0"),
        (["retention", "dry-run", "--ids", "100001"], "'--ids'", "less than or equal to 100000"),
        (["retention", "policy", "--set", "--keep-last", "0"], "'--keep-last'", "greater than or equal to 1"),
        (["retention", "policy", "--set", "--max-age-days", "-1"], "'--max-age-days'", "more than 0 days"),
        (["retention", "policy", "--set", "--payload-ttl-days", "0"], "'--payload-ttl-days'", "more than 0"),
        (["retention", "policy", "--set", "--max-age-days", "1e9"], "'--max-age-days'", "365000 days"),
        (
            ["retention", "policy", "--set", "--max-age-days", "7", "--failed-max-age-days", "3"],
            "--failed-max-age-days 3",
            "below --max-age-days 7",
        ),
        (
            ["retention", "restore", "--start", "2026-01-02", "--end", "2026-01-01"],
            "--end 2026-01-01",
            "not after --start",
        ),
    ],
)
def test_a_bad_value_is_exit_2_naming_the_option(store: Path, args: list[str], named: str, why: str) -> None:
    before = invoke("users", "list", "--db", str(store)).stdout
    done = invoke(*args, "--db", str(store))
    assert done.exit_code == 2, (done.output, done.exception)
    line = one_error_line(done.stderr)
    assert named in line and why in line, line
    assert "Value error" not in line and "keep_count" not in line, line
    assert invoke("users", "list", "--db", str(store)).stdout == before  # nothing created or changed


def test_good_roles_still_work(store: Path) -> None:
    made = invoke("users", "create", "bob", "--role", "pending", "--db", str(store))
    assert made.exit_code == 0 and "created bob (pending)" in made.stdout, made.output
    changed = invoke("users", "set-role", "bob", "user", "--db", str(store))
    assert changed.exit_code == 0 and "bob is now user" in changed.stdout, changed.output


# -- db upgrade --to below the store's version --------------------------------------------------------


def test_upgrade_to_a_version_below_the_stores_says_so(store: Path) -> None:
    head = migrations.head()
    done = invoke("db", "upgrade", "--to", "5", "--db", str(store))
    assert done.exit_code == 2, (done.output, done.exception)
    line = one_error_line(done.stderr)
    assert f"at schema {head}, already past 5" in line and "db downgrade" in line, line
    assert done.stdout == ""
    assert f"current: {head} " in invoke("db", "current", "--db", str(store)).stdout
    same = invoke("db", "upgrade", "--to", str(head), "--db", str(store))  # already there: a no-op
    assert same.exit_code == 0 and same.stdout.strip() == f"current: {head}", same.output


# -- cleanup of an unknown flow, through a server and on the stopped store --------------------------------

UNKNOWN_FLOWS = ["no-such-flow", "a/b", "[red]x[/red]"]


def test_cleanup_of_an_unknown_flow_says_the_same_through_a_running_server(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with LiveServer(db, env={"FLOWHISTORY_SCHEDULER_ENABLED": "false"}) as server:
        served = {flow: subprocess_cli("cleanup", flow, "--db", str(db)) for flow in UNKNOWN_FLOWS}
        assert server.stop() == 0
    stopped = {flow: subprocess_cli("cleanup", flow, "--db", str(db)) for flow in UNKNOWN_FLOWS}
    for flow in UNKNOWN_FLOWS:
        said = f"error: unknown flow {flow}: no flow has this id; nothing deleted\n"
        assert (served[flow].returncode, served[flow].stderr) == (1, said), served[flow].stderr
        assert (stopped[flow].returncode, stopped[flow].stderr) == (1, said), stopped[flow].stderr
