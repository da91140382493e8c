"""The `flowhistory` command: serve, migrations, users, keys, groups, tokens, cleanup, jobs, SQL,
exports, retention, alerts, backup and restore; one module per domain, named like the `api/routes/` module it mirrors.

Commands other than `serve` open the store directly. A running server holds the file (DuckDB
allows one process per store): they then ask that server's HTTP API (api/cli/remote.py) and
print the same, or, where the API has no counterpart, say in one line to stop the server.

Which commands may create a store at a path that has none: `serve`, `db upgrade`, `users create`,
`groups create`, `retention policy --set`, `import openwebui` and `restore` (they add to a store,
or put one in place). Every other command that opens the store only reads it or changes what it
holds: on a path with no store it says so in one line and exits 1, creating nothing
(common.refuse_missing_store; in Open WebUI mode any command may). `sql`, `token`, `jobs` and
`backup` do not open it for writing (`backup` refuses a missing store itself).
"""

from __future__ import annotations

from api.cli import admin, alerts, backup, db, executions, exports, importer, jobs, retention, serve, sql
from api.cli.common import Typer, check_environment

app = Typer(help="flowhistory: execution history and analytics for AI flows.", no_args_is_help=True)
# before every command: an invalid FLOWHISTORY_ variable (FLOWHISTORY_PORT=83986) is one line, exit 2
app.callback()(check_environment)

# Help lists commands in the order they are added here, groups after commands.
app.command()(serve.serve)
app.command()(admin.token)
app.command()(executions.cleanup)
app.command("sql")(sql.sql_command)
app.command("backup")(backup.backup_command)
app.command("restore")(backup.restore_command)
app.add_typer(db.app, name="db")
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.groups_app, name="groups")
app.add_typer(jobs.app, name="jobs")
app.add_typer(exports.app, name="export")
app.add_typer(retention.app, name="retention")
app.add_typer(alerts.app, name="alerts")
app.add_typer(importer.app, name="import")


def main() -> None:
    app()
