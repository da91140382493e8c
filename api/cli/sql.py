"""`flowhistory sql`: ad-hoc SQL over the export (analytics/exports/sql_sandbox.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from analytics.core.config import Settings
from analytics.core.errors import FlowHistoryError
from api.cli.common import console, err, fail

_SQL_OUTPUTS = {".csv": "csv", ".parquet": "parquet", ".json": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def sql_command(
    query: Annotated[str, typer.Argument(help="one DuckDB SELECT; views executions, execution_nodes, flows")],
    export: Annotated[
        Path | None,
        typer.Option("--export", help="export folder (default: FLOWHISTORY_EXPORT_URL or data/exports)"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write every row to FILE.csv, .parquet or .json (JSON Lines)"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="rows at most (default: 1000 printed, all written)")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="stop the query after this many seconds")] = 600.0,
) -> None:
    """Run SQL over the Parquet export in a read-only sandbox; no server or store needed."""
    from analytics.core.batch_formats import Format
    from analytics.exports import sql_sandbox
    from analytics.exports.sql_values import python_columns

    settings = Settings()
    limits = sql_sandbox.limits_from(settings)
    try:
        root = export or sql_sandbox.export_root(settings)
        if output is None:
            result = sql_sandbox.run_sql(root, query, limit=limit or 1000, timeout_s=timeout, limits=limits)
            table = Table(*(f"{c.name}\n[dim]{c.type}[/dim]" for c in result.columns))
            for row in zip(*python_columns(result.table), strict=True):
                table.add_row(*("" if v is None else str(v) for v in row))
            console.print(table)
            more = f", truncated at --limit {limit or 1000}" if result.truncated else ""
            err.print(f"{result.row_count} rows in {result.elapsed_ms:.0f} ms{more}")
            return
        kind = _SQL_OUTPUTS.get(output.suffix.lower())
        if kind is None:
            raise typer.BadParameter(f"--output must end in {', '.join(_SQL_OUTPUTS)}", param_hint="--output")
        written = sql_sandbox.write_sql(
            root, query, output, Format(kind), limit=limit, timeout_s=timeout, limits=limits
        )
        err.print(f"wrote {written} rows to {output}")
    except FlowHistoryError as exc:
        fail(exc, 1)
