"""Trends over big scopes read daily rollups: exact counts and sums, percentiles within the
bins' error, and always fresh: live days, late imports, deletes and re-pricing show at once."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history import runs as history
from analytics.trends import metrics as trends
from analytics.trends import rollups
from analytics.trends.metrics import MetricsQuery
from tests.factories import ROOT as ADMIN

DAY0 = datetime(2026, 4, 1)
TODAY = date(2026, 4, 21)  # the refresh rolls days before this one
END = datetime(2026, 4, 22)


def _runs(fid: str, rng: random.Random, days: range, per_day: int) -> list[dict[str, Any]]:
    out = []
    for d in days:
        for i in range(per_day):
            status = rng.choices(["success", "error", "aborted"], [80, 15, 5])[0]
            out.append(
                {
                    "flow_id": fid,
                    "status": status,
                    "execution_time": int(rng.lognormvariate(7, 1.2)) if i % 17 else 0,
                    "created_at": (DAY0 + timedelta(days=d, seconds=rng.randrange(86400))).isoformat(),
                    "node_results": {
                        "model_1739905519876_k3j9x2abq": {"modelId": "gpt-4o-mini", "text": "x" * i}
                    },
                }
            )
    return out


@pytest.fixture
def big(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> str:
    fid = flows.create_flow(ctx, ADMIN, name="big", nodes=[], edges=[]).id
    other = flows.create_flow(ctx, ADMIN, name="other", nodes=[], edges=[]).id
    rng = random.Random(7)
    items = _runs(fid, rng, range(0, 21), 40) + _runs(other, rng, range(0, 21), 5)
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    result = rollups.refresh(ctx, today=TODAY)
    assert result["rolled_until"] == TODAY.isoformat() and result["days_rolled"] == 20
    assert ctx.rollup_state.until == TODAY
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", -1)
    return fid


def _query(**kw: Any) -> MetricsQuery:
    return MetricsQuery.model_validate(
        {
            "measures": list(trends.Measure),
            "start": DAY0 + timedelta(days=11),
            "end": END,
            "bucket": "day",
            **kw,
        }
    )


def _exact(ctx: Context, query: MetricsQuery, monkeypatch: pytest.MonkeyPatch) -> trends.MetricsResult:
    with monkeypatch.context() as m:
        m.setattr(trends, "ROLLUP_MIN_RUNS", 10**12)
        m.setattr(trends, "SMALL_SCOPE_RUNS", -1)
        return trends.metrics(ctx, ADMIN, query)


def _quantile_cont(durations: list[int], q: float) -> float:
    """DuckDB's quantile_cont: linear interpolation between the two nearest ranks."""
    ordered = sorted(durations)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _assert_agrees(got: dict[str, Any], want: dict[str, Any], durations: list[int]) -> None:
    for name, value in want.items():
        if name.startswith("p") and name.endswith("_duration"):
            q = int(name[1:3]) / 100
            if not durations:
                assert got[name] is None, name  # no runs: a gap
                continue
            truth = _quantile_cont(durations, q)
            assert got[name] == pytest.approx(truth, rel=rollups.RELATIVE_ERROR, abs=1e-9), name
        elif isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-9), name
        else:
            assert got[name] == value, name


def _durations(ctx: Context, fid: str, lo: datetime, hi: datetime) -> dict[datetime, list[int]]:
    rows = ctx.store.read(
        lambda c: c.execute(
            "SELECT created_at, execution_time FROM executions WHERE flow_id = ? AND created_at >= ? AND created_at < ?",
            [fid, lo, hi],
        ).fetchall()
    )
    out: dict[datetime, list[int]] = {}
    for at, ms in rows:
        out.setdefault(datetime(at.year, at.month, at.day), []).append(ms)
    return out


def _check(ctx: Context, fid: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> trends.MetricsResult:
    query = _query(filter={"flow_id": {"any_": [fid]}}, **kw)
    got = trends.metrics(ctx, ADMIN, query)
    want = _exact(ctx, query, monkeypatch)
    assert got.percentiles_approximate and not want.percentiles_approximate
    per_day = _durations(ctx, fid, query.start, query.end)
    rows_got, rows_want = got.rows.to_pylist(), want.rows.to_pylist()
    assert [r["bucket"] for r in rows_got] == [r["bucket"] for r in rows_want]
    for g, w in zip(rows_got, rows_want, strict=True):
        _assert_agrees(g, w, per_day.get(g["bucket"], []))
    everything = [ms for v in per_day.values() for ms in v]
    total_got, total_want = got.totals.to_pylist()[0], want.totals.to_pylist()[0]
    _assert_agrees(
        {k: v for k, v in total_got.items() if "_previous" not in k and "_change" not in k},
        {k: v for k, v in total_want.items() if "_previous" not in k and "_change" not in k},
        everything,
    )
    assert total_got["runs_previous"] == total_want["runs_previous"]
    assert total_got["cost_previous"] == pytest.approx(total_want["cost_previous"], rel=1e-9)
    return got


def test_rollups_answer_with_exact_counts_and_close_percentiles(
    ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _check(ctx, big, monkeypatch)
    assert sum(r["runs"] for r in got.rows.to_pylist()) == 40 * 10  # days 11..20 (21 is empty)


def test_a_rollup_answers_cost_total_is_the_exactly_rounded_sum(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows read from the rollups were added with `+`: a trend's total cost was off in its last
    digits from its own days' costs added exactly, and from /cost and the exact path."""
    fid = flows.create_flow(ctx, ADMIN, name="costly", nodes=[], edges=[]).id
    rng = random.Random(1)  # a seed whose days added with `+` are not exactly rounded
    items = [
        {
            "flow_id": fid,
            "status": rng.choice(["success", "error", "aborted"]),
            "execution_time": 5,
            "created_at": (DAY0 + timedelta(days=d, seconds=rng.randrange(86400))).isoformat(),
            "node_results": {
                "model_1": {
                    "modelId": "gpt-4o-mini",
                    "usage": {
                        "prompt_tokens": rng.randrange(10 ** rng.randrange(1, 7)),
                        "completion_tokens": 7,
                    },
                }
            },
        }
        for d in range(20)
        for _ in range(60)
    ]
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    rollups.refresh(ctx, today=TODAY)
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", -1)
    query = _query(filter={"flow_id": {"any_": [fid]}}, measures=["cost", "p95_duration"], start=DAY0)
    got, want = trends.metrics(ctx, ADMIN, query), _exact(ctx, query, monkeypatch)
    assert got.percentiles_approximate and got.rows.num_rows == 21  # read from the rollups
    days = [r["cost"] for r in got.rows.to_pylist() if r["cost"] is not None]
    total = got.totals.to_pylist()[0]["cost"]
    assert total == math.fsum(days) == want.totals.to_pylist()[0]["cost"]


def test_groups_and_weeks_from_rollups(ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for kw in ({"group_by": "status"}, {"bucket": "week"}):
        query = _query(**kw, filter={"flow_id": {"any_": [big]}})
        got, want = trends.metrics(ctx, ADMIN, query), _exact(ctx, query, monkeypatch)
        assert got.percentiles_approximate
        assert len(got.rows) == len(want.rows) > 0
        for g, w in zip(got.rows.to_pylist(), want.rows.to_pylist(), strict=True):
            for name, value in w.items():
                if name.endswith("_duration") and name.startswith("p"):
                    continue  # checked against the runs in the tests above
                assert g[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)


def test_an_answer_without_percentiles_is_not_said_to_be_approximate(ctx: Context, big: str) -> None:
    """Counts and sums from rollups are exact: `percentiles_approximate` was true without any
    percentile asked."""
    query = _query(filter={"flow_id": {"any_": [big]}})
    assert trends.metrics(ctx, ADMIN, query).percentiles_approximate
    counts = _query(measures=["runs", "cost", "avg_duration"], filter={"flow_id": {"any_": [big]}})
    assert not trends.metrics(ctx, ADMIN, counts).percentiles_approximate


def test_live_days_late_imports_deletes_and_repricing_show_at_once(
    ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    # today's runs: not rolled, read live
    late = _runs(big, rng, range(20, 21), 3)
    # a late import into a rolled day: marks it dirty before the ingest is acknowledged
    late += _runs(big, rng, range(12, 13), 4)
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, late))
    assert ctx.store.read(lambda c: rollups.dirty_pairs(c, [big], date(2026, 1, 1), TODAY)) == [
        (big, date(2026, 4, 13))
    ]
    _check(ctx, big, monkeypatch)
    # deleting a run of a rolled day
    victim = ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR FROM executions WHERE flow_id = ? AND created_at::DATE = '2026-04-15' LIMIT 1",
            [big],
        ).fetchall()
    )[0][0]
    history.delete_execution(ctx, ADMIN, big, victim)
    got = _check(ctx, big, monkeypatch)
    day15 = next(r for r in got.rows.to_pylist() if r["bucket"] == datetime(2026, 4, 15))
    assert day15["runs"] == 39
    # the refresh rebuilds the dirty days; answers stay the same
    result = rollups.refresh(ctx, today=TODAY)
    assert result["dirty_rebuilt"] == 2 and result["disagreeing_rebuilt"] == 0
    assert ctx.store.read(lambda c: rollups.dirty_pairs(c, None, date(2026, 1, 1), TODAY)) == []
    _check(ctx, big, monkeypatch)


def test_a_write_that_bypasses_invalidation_is_caught_by_the_refresh(
    ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.store.write(
        lambda c: c.execute(
            "DELETE FROM executions WHERE flow_id = ? AND created_at::DATE = '2026-04-14'", [big]
        )
    )
    result = rollups.refresh(ctx, today=TODAY)
    assert result["disagreeing_rebuilt"] == 1
    got = _check(ctx, big, monkeypatch)
    assert next(r for r in got.rows.to_pylist() if r["bucket"] == datetime(2026, 4, 14))["runs"] == 0


def test_small_scopes_partial_days_and_hour_buckets_stay_exact(
    ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 10**9)
    assert not trends.metrics(ctx, ADMIN, _query(filter={"flow_id": {"any_": [big]}})).percentiles_approximate
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    assert not trends.metrics(
        ctx, ADMIN, _query(start=DAY0 + timedelta(days=3, hours=5))
    ).percentiles_approximate
    assert not trends.metrics(
        ctx, ADMIN, _query(bucket="hour", start=END - timedelta(days=3))
    ).percentiles_approximate
    assert not trends.metrics(
        ctx, ADMIN, _query(filter={"execution_time": {"ge_": 10}})
    ).percentiles_approximate
    # an admin's query over every flow may use them
    assert trends.metrics(ctx, ADMIN, _query()).percentiles_approximate


def test_a_reader_who_sees_only_own_runs_gets_the_exact_path(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = Viewer("owner", "user")
    from analytics.access import users

    for uid in ("owner", "reader"):
        users.create_user(ctx, uid)
    fid = flows.create_flow(ctx, owner, name="shared", nodes=[], edges=[], access_control=None).id
    items = _runs(fid, random.Random(3), range(0, 5), 6)
    for i, item in enumerate(items):
        item["user_id"] = "reader" if i % 2 else "owner"
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    rollups.refresh(ctx, today=TODAY)
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", -1)
    query = _query(start=DAY0, filter={"flow_id": {"any_": [fid]}})
    mine = trends.metrics(ctx, Viewer("reader", "user"), query)
    assert not mine.percentiles_approximate
    assert mine.totals.to_pylist()[0]["runs"] == 15
    assert trends.metrics(ctx, owner, query).totals.to_pylist()[0]["runs"] == 30


def test_refresh_on_an_empty_store_starts_today(ctx: Context) -> None:
    assert rollups.refresh(ctx, today=TODAY) == {
        "rolled_until": TODAY.isoformat(),
        "days_rolled": 0,
        "dirty_rebuilt": 0,
        "disagreeing_rebuilt": 0,
    }
    assert ctx.rollup_state.until == TODAY


def test_a_zoned_trend_never_reads_the_utc_rollups(
    ctx: Context, big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollups are per UTC day: a day bucket at Berlin's midnights must come from the runs."""
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    assert trends.metrics(ctx, ADMIN, _query()).percentiles_approximate  # UTC: the rollups answer
    zoned = trends.metrics(ctx, ADMIN, _query(tz="Europe/Berlin"))
    assert not zoned.percentiles_approximate and zoned.tz == "Europe/Berlin"
    exact = _exact(ctx, _query(tz="Europe/Berlin"), monkeypatch)
    assert zoned.rows.to_pylist() == exact.rows.to_pylist()
    assert all(r["bucket"].hour in (22, 23) for r in zoned.rows.to_pylist())  # Berlin midnights in UTC


def test_days_without_runs_are_rolled_in_one_step(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """One backfilled run of year 1 made the first refresh walk 740,000 empty days 31 at a time
    (~24,000 writer transactions, minutes); spans without runs are now one step each."""
    fid = flows.create_flow(ctx, ADMIN, name="ancient", nodes=[], edges=[]).id
    times = ["0001-01-05T10:00:00Z", "1999-12-31T23:00:00Z", "2026-04-02T08:00:00Z", "2026-04-19T08:00:00Z"]
    items = [{"flow_id": fid, "status": "success", "execution_time": 10, "created_at": t} for t in times]
    assert all(r.status == "stored" for r in ingest.save_executions(ctx, ADMIN, items))
    writes = 0
    real_write = ctx.store.write

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal writes
        writes += 1
        return real_write(*args, **kwargs)

    monkeypatch.setattr(ctx.store, "write", counted)
    result = rollups.refresh(ctx, today=TODAY)
    assert result["rolled_until"] == TODAY.isoformat()
    assert writes <= 10, writes  # a step a run (and its next 31 days) and a step a gap, not per 31 days
    rows = ctx.store.read(
        lambda c: c.execute("SELECT day, sum(runs) FROM trend_rollups GROUP BY day ORDER BY day").fetchall()
    )
    assert rows == [
        (date(1, 1, 5), 1),
        (date(1999, 12, 31), 1),
        (date(2026, 4, 2), 1),
        (date(2026, 4, 19), 1),
    ]
