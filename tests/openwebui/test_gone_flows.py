"""Runs of a flow gone from Open WebUI count as deleted at once in the Parquet export and in
rollup-based trends too (as in search), until the orphan job frees them. A flow id that comes
back owned by someone else is another flow: the gone flow's runs never reach its owner.

Expected answers are computed here from the runs the test stored, not read back from the store.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.history import ingest
from analytics.openwebui.sync import purge_orphans
from analytics.trends import metrics as trends
from analytics.trends import rollups
from analytics.trends.metrics import MetricsQuery
from api.app import create_app
from tests.factories import SECRET, World, bearer, make_execution, open_world
from tests.factories.exports import read
from tests.openwebui.webui_db import WebUIDb

ADMIN = Viewer("admin", "admin")
DAY0 = datetime(2026, 4, 1)
TODAY = date(2026, 4, 11)  # the rollup refresh rolls the days before this one
DAYS = 12  # runs on days 0..11: ten rolled days, and today and tomorrow read live


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path, "sqlite", openwebui_orphan_grace_s=3600)


def save(w: World, fid: str, rng: random.Random, per_day: int) -> list[dict[str, Any]]:
    """`per_day` runs on each of DAYS days (an admin import: any created_at)."""
    runs = [
        make_execution(
            fid,
            user_id="owner",
            status=rng.choice(["success", "error", "aborted"]),
            execution_time=rng.randrange(1, 5000),
            created_at=(DAY0 + timedelta(days=d, seconds=rng.randrange(86400))).isoformat(),
        )
        for d in range(DAYS)
        for _ in range(per_day)
    ]
    results = ingest.save_executions(w.ctx, ADMIN, runs)
    assert all(r.status == "stored" for r in results), results
    for run, result in zip(runs, results, strict=True):
        run["id"] = result.id
    return runs


def two_flows(w: World) -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(12)
    keep, gone = w.new_flow(name="keep"), w.new_flow(name="gone")
    return keep, gone, save(w, keep, rng, 7), save(w, gone, rng, 5)


def delete_in_open_webui(w: World, fid: str) -> None:
    assert w.webui is not None
    w.webui.delete_flow(fid)
    w.sync()
    assert w.ctx.directory.flow(fid) is None


def export(w: World) -> Path:
    r = w.client.post("/api/v1/exports/run", headers=bearer("admin"))
    assert r.status_code == 200, r.text
    return Path(r.json()["status"]["target"])


def exported(root: Path) -> tuple[Counter[str], set[str]]:
    """Runs per flow in the executions files, and the flows in the execution_nodes files."""
    runs = Counter(fid for (fid,) in read(root, "SELECT flow_id FROM t"))
    nodes = {fid for (fid,) in read(root, "SELECT DISTINCT flow_id FROM t", table="execution_nodes")}
    return runs, nodes


def test_the_export_drops_runs_of_a_gone_flow_at_once(world: World) -> None:
    keep, gone, kept, lost = two_flows(world)
    root = export(world)
    runs, nodes = exported(root)
    assert set(runs) == {keep, gone} and nodes == {keep, gone}

    delete_in_open_webui(world, gone)
    root = export(world)
    runs, nodes = exported(root)
    assert runs == Counter({keep: len(kept)})
    assert nodes == {keep}
    assert {i for (i,) in read(root, "SELECT id FROM t")} == {r["id"] for r in kept}
    flows = set(pq.read_table(root / "flows" / "flows.parquet").column("id").to_pylist())
    assert flows == {keep, world.shared, world.public, world.private}  # every flow Open WebUI has

    # the orphan job frees them later: the export stays the same
    world.ctx.settings.openwebui_orphan_grace_s = 0
    assert purge_orphans(world.ctx) == {"flows": 1, "runs": len(lost)}
    root = export(world)
    assert exported(root)[0] == Counter({keep: len(kept)})


def test_a_flow_back_in_open_webui_is_exported_again(world: World) -> None:
    """Within the grace the runs are still stored: a flow restored in Open WebUI brings them back."""
    keep, gone, kept, lost = two_flows(world)
    assert world.webui is not None
    delete_in_open_webui(world, gone)
    assert exported(export(world))[0] == Counter({keep: len(kept)})
    world.webui.add_flow("owner", flow_id=gone, name="gone")
    world.sync()
    assert exported(export(world))[0] == Counter({keep: len(kept), gone: len(lost)})


def stored_runs(w: World, fid: str) -> int:
    [(n,)] = w.ctx.store.read(
        lambda c: c.execute("SELECT count(*) FROM executions WHERE flow_id = ?", [fid]).fetchall()
    )
    return int(n)


def assert_none_visible(w: World, fid: str, lost: list[dict[str, Any]]) -> None:
    """No route shows the old runs: not to the new owner, not to an admin, not in the export."""
    for user in ("stranger", "admin"):
        listed = w.client.get(f"/api/v1/flows/{fid}/executions", headers=bearer(user))
        assert listed.status_code == 200 and listed.json() == [], (user, listed.text[:300])
        for run in lost[:3]:
            r = w.client.get(f"/api/v1/flows/{fid}/executions/{run['id']}", headers=bearer(user))
            assert r.status_code == 404, (user, r.status_code, r.text[:200])
        stats = w.client.get(f"/api/v1/flows/{fid}/executions/stats", headers=bearer(user))
        assert stats.status_code == 200 and stats.json()["total_executions"] == 0, stats.text[:300]
    hits = w.client.post("/api/v1/executions/search", json={}, headers=bearer("admin")).json()
    assert not {h["id"] for h in hits["items"]} & {r["id"] for r in lost}
    assert fid not in exported(export(w))[0]
    assert stored_runs(w, fid) == 0  # deleted, not hidden: nothing can bring them back


@pytest.mark.parametrize("seen_gone", [True, False], ids=["after-a-poll", "within-one-poll"])
def test_an_id_back_with_another_owner_does_not_bring_the_runs_back(world: World, seen_gone: bool) -> None:
    """Within the grace the gone flow's runs are still stored; `stranger` makes a flow with its
    id in Open WebUI (also between two polls, so flowhistory never sees the id missing): the
    runs are deleted before his flow is shown, on every route."""
    _, gone, _, lost = two_flows(world)
    assert world.webui is not None
    if seen_gone:
        delete_in_open_webui(world, gone)
    else:
        world.webui.delete_flow(gone)
    world.webui.add_flow("stranger", flow_id=gone, name="mine now", access_control={})
    world.sync()
    acl = world.ctx.directory.flow(gone)
    assert acl is not None and acl.owner_id == "stranger"
    assert_none_visible(world, gone, lost)
    # his own runs of his flow are his as usual
    mine = world.post_run("stranger", gone)
    listed = world.client.get(f"/api/v1/flows/{gone}/executions", headers=bearer("stranger")).json()
    assert [r["id"] for r in listed] == [mine["id"]]


def test_an_id_back_with_another_owner_after_a_restart(tmp_path: Path) -> None:
    """A server that was down while the flow was deleted and its id taken by someone else has
    only its store's copy of the flow to compare with: that is enough."""
    first = open_world(tmp_path, "sqlite", openwebui_orphan_grace_s=3600)
    w = next(first)
    _, gone, _, lost = two_flows(w)
    assert w.webui is not None
    url = w.webui.url
    w.webui.delete_flow(gone)
    w.webui.add_flow("stranger", flow_id=gone, name="mine now", access_control={})
    first.close()  # the server stops without having polled
    settings = Settings(
        db_path=tmp_path / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        openwebui_db=url,
        openwebui_poll_s=3600.0,
        openwebui_orphan_grace_s=3600,
    )
    webui = WebUIDb(url)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            again = World(client, client.app.state.ctx, "", "", "", webui)  # type: ignore[attr-defined]
            assert again.ctx.directory.flow(gone).owner_id == "stranger"  # type: ignore[union-attr]
            assert_none_visible(again, gone, lost)
    finally:
        webui.close()


def _query(**kw: Any) -> MetricsQuery:
    return MetricsQuery.model_validate(
        {
            "measures": ["runs", "error", "p50_duration"],
            "start": DAY0,
            "end": DAY0 + timedelta(days=DAYS),
            "bucket": "day",
            **kw,
        }
    )


def _per_day(runs: list[dict[str, Any]]) -> Counter[date]:
    return Counter(datetime.fromisoformat(r["created_at"]).date() for r in runs)


def test_rollup_trends_leave_out_a_gone_flow(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    keep, gone, kept, _ = two_flows(world)
    result = rollups.refresh(world.ctx, today=TODAY)
    assert result["days_rolled"] == 10
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)  # let rollups answer a small store
    monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", -1)
    delete_in_open_webui(world, gone)

    for query in (_query(), _query(group_by="flow")):
        got = trends.metrics(world.ctx, ADMIN, query)
        assert got.percentiles_approximate  # the rollups answered
        rows = got.rows.to_pylist()
        assert {r.get("group") for r in rows} <= {keep, None}
        per_day = Counter({r["bucket"].date(): r["runs"] for r in rows if r["runs"]})
        assert per_day == _per_day(kept)

    # the answer equals the exact scan's
    with monkeypatch.context() as m:
        m.setattr(trends, "ROLLUP_MIN_RUNS", 10**12)
        exact = trends.metrics(world.ctx, ADMIN, _query())
    assert not exact.percentiles_approximate
    assert [r["runs"] for r in exact.rows.to_pylist()] == [
        r["runs"] for r in trends.metrics(world.ctx, ADMIN, _query()).rows.to_pylist()
    ]
