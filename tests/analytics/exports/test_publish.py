"""`publish_partitioned`: Arrow data appended into the export layout under any root (the archive)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from analytics.exports import publish_partitioned
from analytics.exports.targets import LocalTarget
from tests.factories.exports import parquet_files, read


def test_publishes_by_utc_day_and_appends(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "archive", str(tmp_path / "archive"))
    times = [datetime(2026, 11, 1, 23, 59, tzinfo=UTC), datetime(2026, 11, 2, 0, 1, tzinfo=UTC)]
    first = pa.table({"id": ["a", "b"], "created_at": pa.array(times, pa.timestamp("us", tz="UTC"))})
    published = publish_partitioned(first, target, "executions")
    assert sorted(str(Path(p).parent) for p in published) == [
        "executions/date=2026-11-01",
        "executions/date=2026-11-02",
    ]
    assert all((tmp_path / "archive" / p).is_file() for p in published)
    assert all(not (tmp_path / "archive" / p).parent.is_symlink() for p in published)  # real folders

    naive = pa.table({"id": ["c"], "created_at": pa.array([datetime(2026, 11, 1, 12)], pa.timestamp("us"))})
    publish_partitioned(naive.to_reader(), target, "executions")  # a reader; naive means UTC
    root = tmp_path / "archive"
    assert read(root, "SELECT date, list(id ORDER BY id) FROM t GROUP BY date ORDER BY date") == [
        (datetime(2026, 11, 1).date(), ["a", "c"]),
        (datetime(2026, 11, 2).date(), ["b"]),
    ]
    assert len(parquet_files(root, "executions")) == 3  # appended, never rewritten
    assert not any((root / "_staging").iterdir())
