"""The export folder on a disk of its own, full: the cycle fails saying so in words (the API's
502 detail and the export status carried DuckDB's text with the staging path, or only the
follow-on "transaction is aborted"); the store is untouched, and the next cycle with room
completes the export."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import FolderFull
from analytics.exports import export_status, run_export
from analytics.exports.run import EXPORT_FOLDER_FULL
from tests.factories import SECRET
from tests.factories.disk import leave_free
from tests.factories.exports import add_runs, seed_flow

DAYS = [f"2026-03-{d:02d}" for d in range(1, 29)]


def test_a_full_export_folder_fails_the_cycle_in_words_and_the_next_one_completes(
    tmp_path: Path, small_disk: Path
) -> None:
    root = small_disk / "exports"
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        scheduler_enabled=False,
        export_url=str(root),
    )
    with open_context(settings) as ctx:
        fid = seed_flow(ctx)
        add_runs(ctx, fid, DAYS, 40, inputs={"prompt": "x" * 4000})
        filler = leave_free(small_disk, 64 << 10)  # room for a few files, not the export
        with pytest.raises(FolderFull) as info:
            run_export(ctx)
        assert str(info.value) == EXPORT_FOLDER_FULL
        status = export_status(ctx)
        assert status["ok"] is False and status["error"] == EXPORT_FOLDER_FULL, status
        assert not ctx.store.full  # the store's disk has room: not its full mode
        filler.unlink()
        run_export(ctx)
        exported = duckdb.sql(
            f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{root}/executions/**/*.parquet')"
        ).fetchall()
        assert exported == [(40 * len(DAYS), 40 * len(DAYS))]
