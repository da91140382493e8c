"""`flowhistory sql`: ad-hoc SQL over the export (analytics/exports/sql_sandbox.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from analytics.core.config import Settings
from analytics.core.errors import FlowHistoryError
from api.cli.common import console, err, fail

_SQL_OUTPUTS = {".csv": "csv", ".parquet": "parquet", ".json": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# the query is run as LIMIT limit+1 (to tell a truncated answer), which must fit DuckDB's BIGINT
MAX_LIMIT = 2**63 - 2
# the CLI may wait longer than the server's console (FLOWHISTORY_SQL_MAX_TIMEOUT_S), but not
# forever: a day (a timer past ~1e10 s could not even be set)
MAX_TIMEOUT_S = 86_400.0


def _refuse_output(output: Path, overwrite: bool) -> None:
    """Before the query runs: a file whose folder is missing, a folder, or (without --overwrite,
    as a backup never overwrites) an existing file is refused rather than found out at the end."""
    if output.suffix.lower() not in _SQL_OUTPUTS:
        raise typer.BadParameter(f"--output must end in {', '.join(_SQL_OUTPUTS)}", param_hint="--output")
    if output.is_dir():
        fail(FlowHistoryError(f"{output} is a folder: name a file in it"), 1)
    if not output.parent.is_dir():
        fail(FlowHistoryError(f"the folder {output.parent} does not exist"), 1)
    if output.exists() and not overwrite:
        fail(FlowHistoryError(f"{output} exists; --overwrite replaces it"), 1)


def sql_command(
    query: Annotated[
        str, typer.Argument(help="one DuckDB SELECT; views executions, execution_nodes, flows, annotations")
    ],
    export: Annotated[
        Path | None,
        typer.Option("--export", help="export folder (default: FLOWHISTORY_EXPORT_URL or data/exports)"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write every row to FILE.csv, .parquet or .json (JSON Lines)"),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace the --output file if it exists (else refused)")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_LIMIT, help="rows at most (default: 1000 printed, all written)"),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.001, max=MAX_TIMEOUT_S, help="stop the query after this many seconds (a day at most)"
        ),
    ] = 600.0,
) -> None:
    """Run SQL over the Parquet export in a read-only sandbox; no server or store needed."""
    from analytics.core.batch_formats import Format
    from analytics.exports import sql_sandbox
    from analytics.exports.sql_values import python_columns

    settings = Settings()
    limits = sql_sandbox.limits_from(settings)
    if output is not None:
        _refuse_output(output, overwrite)
    try:
        root = export or sql_sandbox.export_root(settings)
        if output is None:
            result = sql_sandbox.run_sql(root, query, limit=limit or 1000, timeout_s=timeout, limits=limits)
            # names and values as they are: `[red]` in a column alias or a value is not markup
            table = Table()
            for c in result.columns:
                table.add_column(Text.assemble(f"{c.name}\n", (str(c.type), "dim")))
            for row in zip(*python_columns(result.table), strict=True):
                table.add_row(*(Text("" if v is None else str(v)) for v in row))
            console.print(table)
            more = f", truncated at --limit {limit or 1000}" if result.truncated else ""
            err.print(f"{result.row_count} rows in {result.elapsed_ms:.0f} ms{more}")
            return
        kind = Format(_SQL_OUTPUTS[output.suffix.lower()])
        written = sql_sandbox.write_sql(
            root, query, output, kind, limit=limit, timeout_s=timeout, limits=limits
        )
        err.print(Text(f"wrote {written} rows to {output}"))
    except FlowHistoryError as exc:
        fail(exc, 1)
