"""The shipped notebook runs headless against a real store and plots what the data says."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.exports import run_export
from analytics.flows import registry as flows
from analytics.history import ingest

NOTEBOOK = Path(__file__).resolve().parents[3] / "data" / "notebooks" / "flow_trends.ipynb"


def _p95(values: list[int]) -> float:
    """Linear interpolation, as DuckDB's quantile_cont."""
    s = sorted(values)
    pos = 0.95 * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@pytest.mark.parametrize("source", ["store", "export", "default"])
def test_notebook_plots_failure_rate_and_p95_per_day(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the store (read-only), over a Parquet export folder, and with no paths set in a checkout
    (the default `data/flowhistory.duckdb` of the repository root, the kernel in data/notebooks):
    the same numbers, and a title naming the flow."""
    root = tmp_path / "checkout"
    (root / "data" / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'checkout'\n")
    db = root / "data" / "flowhistory.duckdb" if source == "default" else tmp_path / "nb.duckdb"
    kernel_dir = root / "data" / "notebooks" if source == "default" else tmp_path
    admin = Viewer("root", "admin")
    day0 = datetime(2026, 5, 1)
    # day 2 has no run: its rate and p95 are null, a gap (the notebook's plot was a TypeError)
    plan = {0: ["success"] * 3 + ["error"], 1: ["success"] * 5, 3: ["error", "aborted", "success"]}
    expected: dict[str, tuple[int, float | None, float | None]] = {}
    with open_context(Settings(db_path=db)) as ctx:
        fid = flows.create_flow(ctx, admin, name="nightly support triage", nodes=[], edges=[]).id
        items = []
        for day, statuses in plan.items():
            times = [100 * (day + 1) + 37 * i for i in range(len(statuses))]
            for i, (status, ms) in enumerate(zip(statuses, times, strict=True)):
                at = day0 + timedelta(days=day, hours=i)
                items.append(
                    {"flow_id": fid, "status": status, "execution_time": ms, "created_at": at.isoformat()}
                )
            expected[(day0 + timedelta(days=day)).date().isoformat()] = (
                len(statuses),
                statuses.count("error") / len(statuses),
                _p95(times),
            )
        assert all(r.status == "stored" for r in ingest.save_executions(ctx, admin, items))
        if source == "export":
            run_export(ctx)
    expected[(day0 + timedelta(days=2)).date().isoformat()] = (0, None, None)

    if source == "export":
        monkeypatch.setenv("FLOWHISTORY_EXPORT_DIR", str(tmp_path / "exports"))
        db.unlink()  # the notebook must not need the store
    if source == "default":
        monkeypatch.delenv("FLOWHISTORY_DB_PATH", raising=False)
        monkeypatch.delenv("FLOWHISTORY_EXPORT_DIR", raising=False)
    else:
        monkeypatch.setenv("FLOWHISTORY_DB_PATH", str(db))
    monkeypatch.setenv("FLOWHISTORY_FLOW_ID", fid)
    monkeypatch.setenv("FLOWHISTORY_DAYS", "4")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(kernel_dir)}}
    ).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no chart was drawn"
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["flow_id"] == fid
    assert summary["title"] == f"nightly support triage ({fid[:8]}): last 4 days, exact percentiles"
    got = {
        d: (n, fr, p95)
        for d, n, fr, p95 in zip(
            summary["days"], summary["runs"], summary["failure_rate"], summary["p95_duration"], strict=True
        )
    }
    assert set(got) == set(expected)
    for day, (n, fr, p95) in expected.items():
        assert got[day][0] == n
        assert got[day][1] == (None if fr is None else pytest.approx(fr))
        assert got[day][2] == (None if p95 is None else pytest.approx(p95))
