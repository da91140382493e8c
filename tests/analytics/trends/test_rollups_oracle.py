"""The rollup trend path against the exact path and a plain-Python oracle, over a seeded grid.

Every answer a trend gives from the daily rollups must equal the exact scan's (counts, sums,
rates; percentiles within `rollups.RELATIVE_ERROR`) for any range, bucket, group-by and filter,
and both must equal what the runs inserted here add up to. The ranges are chosen where the
rollup path has edges: ending in the past (before `rolled_until`), entirely before the first
run, starting before any data, ending mid-day (the exact path answers), spanning the live
days after `rolled_until`, and holding dirty days from a late import and a delete, including
dirty days after the range's end. Runs sit on UTC day edges (00:00:00 and 23:59:59.999999).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history import runs as history
from analytics.trends import metrics as trends
from analytics.trends import rollups
from analytics.trends.metrics import Measure, MetricsQuery
from tests.factories import ROOT as ADMIN

DAY0 = datetime(2026, 3, 2)  # the first run's day (a Monday)
TODAY = date(2026, 4, 6)  # the refresh rolls the days before this one: DAY0 + 35
LAST = 42  # runs until DAY0 + 41 (live days after TODAY)
STATUSES = ("success", "error", "aborted")
EDGE = timedelta(days=1) - timedelta(microseconds=1)
MODEL = {False: "gpt-4o-mini", True: "zeta-unpriced-model"}  # True: no price matches it


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    flow: str
    status: str
    ms: int
    at: datetime
    version: str | None
    tokens_in: int
    tokens_out: int
    cost: float | None
    estimated: bool


@dataclass
class World:
    ctx: Context
    flows: list[str]
    runs: dict[str, Run]


def _items(fid: str, rng: random.Random, days: range, per_day: tuple[int, int]) -> list[dict[str, Any]]:
    out = []
    for d in days:
        base = DAY0 + timedelta(days=d)
        for i in range(rng.randint(*per_day)):
            offset = (timedelta(0), EDGE)[i] if i < 2 else timedelta(seconds=rng.randrange(86400))
            out.append(
                {
                    "flow_id": fid,
                    "status": rng.choices(STATUSES, [80, 15, 5])[0],
                    "execution_time": 0 if i % 13 == 5 else int(rng.lognormvariate(7, 1.5)),
                    "created_at": (base + offset).isoformat(),
                    "node_results": {
                        # every third day a model no price matches: whole days of unknown cost (null)
                        "model_1739905519876_k3j9x2abq": {"modelId": MODEL[d % 3 == 0], "text": "x" * i}
                    },
                }
            )
    return out


def _store(world: World, items: list[dict[str, Any]]) -> None:
    results = ingest.save_executions(world.ctx, ADMIN, items)
    assert all(r.status == "stored" for r in results)
    ids = [r.id for r in results]
    # the per-run facts ingest derives (version, tokens, cost): read back row by row, summed here
    facts = world.ctx.store.read(
        lambda c: c.execute(
            "SELECT id::VARCHAR, flow_version, tokens_in, tokens_out, cost, tokens_estimated FROM executions"
            " WHERE id IN (SELECT unnest(?::UUID[]))",
            [ids],
        ).fetchall()
    )
    by_id = {f[0]: f[1:] for f in facts}
    for rid, item in zip(ids, items, strict=True):
        assert rid is not None
        version, tin, tout, cost, est = by_id[rid]
        world.runs[rid] = Run(
            rid,
            item["flow_id"],
            item["status"],
            item["execution_time"],
            datetime.fromisoformat(item["created_at"]),
            version,
            tin or 0,
            tout or 0,
            cost,
            est,
        )


def _build(ctx: Context) -> World:
    rng = random.Random(20260406)
    names = ("big", "mid", "small")
    world = World(ctx, [flows.create_flow(ctx, ADMIN, name=n, nodes=[], edges=[]).id for n in names], {})
    big, mid, small = world.flows
    _store(world, _items(big, rng, range(0, 20), (8, 14)) + _items(mid, rng, range(3, 20), (2, 6)))
    # a new version of the big flow from day 20 on
    flows.update_flow(ctx, ADMIN, big, {"nodes": [{"id": "n1", "type": "model"}]})
    _store(
        world,
        _items(big, rng, range(20, LAST), (8, 14))
        + _items(mid, rng, range(20, LAST), (2, 6))
        + _items(small, rng, range(10, 30, 3), (1, 3)),
    )
    result = rollups.refresh(ctx, today=TODAY)
    assert result["rolled_until"] == TODAY.isoformat() and result["days_rolled"] == 35
    # late imports into rolled days: one before the first run, one mid-range, one just before
    # `rolled_until`; and a delete from a rolled day. Each leaves a dirty (flow, day) pair.
    late = _items(big, rng, range(-5, -4), (3, 3)) + _items(big, rng, range(12, 13), (4, 4))
    late += _items(mid, rng, range(33, 34), (2, 2))
    _store(world, late)
    victim = next(r for r in world.runs.values() if r.flow == big and r.at.date() == date(2026, 3, 17))
    history.delete_execution(ctx, ADMIN, big, victim.id)
    del world.runs[victim.id]
    dirty = ctx.store.read(lambda c: rollups.dirty_pairs(c, None, date(2000, 1, 1), TODAY))
    assert sorted(d for _, d in dirty) == [
        date(2026, 2, 25),
        date(2026, 3, 14),
        date(2026, 3, 17),
        date(2026, 4, 4),
    ]
    return world


# -- the oracle ---------------------------------------------------------------------------

_ORIGIN = datetime(2000, 1, 3)  # a Monday: weeks are ISO weeks
_WIDTHS = {
    "minute": 1,
    "5 minutes": 5,
    "15 minutes": 15,
    "hour": 60,
    "6 hours": 360,
    "day": 1440,
    "week": 10080,
}


def _floor(step: str, t: datetime) -> datetime:
    if step == "month":
        return datetime(t.year, t.month, 1)
    width = timedelta(minutes=_WIDTHS[step])
    return _ORIGIN + ((t - _ORIGIN) // width) * width


def _following(step: str, t: datetime) -> datetime:
    if step == "month":
        return datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
    return t + timedelta(minutes=_WIDTHS[step])


def _quantile_cont(values: list[int], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _measures(runs: list[Run]) -> dict[str, Any]:
    n = len(runs)
    ms = [r.ms for r in runs]
    out: dict[str, Any] = {"runs": n}
    for s in STATUSES:
        out[s] = sum(r.status == s for r in runs)
    # no runs: counts 0, rates, averages, percentiles and cost null (a gap)
    out["failure_rate"] = out["error"] / n if n else None
    out["avg_duration"] = sum(ms) / n if n else None
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        out[f"{name}_duration"] = _quantile_cont(ms, q) if ms else None
    out["tokens_in"] = sum(r.tokens_in for r in runs)
    out["tokens_out"] = sum(r.tokens_out for r in runs)
    known = [r.cost for r in runs if r.cost is not None]  # null when none is known (no price)
    out["cost"] = math.fsum(known) if known else None
    return out


def _label(run: Run, group: str | None) -> str | None:
    return {None: None, "flow": run.flow, "status": run.status, "flow_version": run.version}[group]


def _oracle(world: World, q: MetricsQuery, step: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows and totals (value and previous per measure) as the trend should give them."""
    f = q.filter
    flows_in = set(f.flow_id.any_) if f is not None and f.flow_id is not None else None
    status_in = set(f.status.any_) if f is not None and f.status is not None else None
    kept = [
        r
        for r in world.runs.values()
        if (flows_in is None or r.flow in flows_in) and (status_in is None or r.status in status_in)
    ]
    prev_start = q.start - (q.end - q.start)
    cur = [r for r in kept if q.start <= r.at < q.end]
    prev = [r for r in kept if prev_start <= r.at < q.start]
    group = q.group_by.value if q.group_by is not None else None
    if group is None:
        groups: list[str | None] = [None]
    else:
        sizes: dict[str | None, int] = {}
        for r in cur:
            sizes[_label(r, group)] = sizes.get(_label(r, group), 0) + 1
        ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
        groups = [g for g, _ in ranked[: q.max_groups]]
    starts = [_floor(step, q.start)]
    while (t := _following(step, starts[-1])) < q.end:
        starts.append(t)
    cells: dict[tuple[datetime, str | None], list[Run]] = {}
    for r in cur:
        cells.setdefault((_floor(step, r.at), _label(r, group)), []).append(r)
    rows = []
    for b in starts:
        for g in groups:
            rows.append(
                {"bucket": b, **({} if group is None else {"group": g}), **_measures(cells.get((b, g), []))}
            )
    totals = []
    for g in groups:
        now = _measures([r for r in cur if _label(r, group) == g])
        before = _measures([r for r in prev if _label(r, group) == g])
        # not asked for: every `_previous` is null
        totals.append({**now, **{f"{k}_previous": v if q.previous else None for k, v in before.items()}})
    return rows, totals


# -- comparing ----------------------------------------------------------------------------

_PERCENTILES = {m.value for m in trends._QUANTILES}


def _same(got: Any, want: Any, name: str, approximate: bool, where: str) -> None:
    base = name.removesuffix("_previous")
    if want is None:
        assert got is None, where
    elif base in _PERCENTILES and approximate:
        assert got == pytest.approx(want, rel=rollups.RELATIVE_ERROR, abs=1e-9), where
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def _agree(
    result: trends.MetricsResult, rows: list[dict[str, Any]], totals: list[dict[str, Any]], case: str
) -> None:
    approximate = result.percentiles_approximate
    got_rows = result.rows.to_pylist()
    assert [(r["bucket"], r.get("group")) for r in got_rows] == [
        (r["bucket"], r.get("group")) for r in rows
    ], case
    for g, w in zip(got_rows, rows, strict=True):
        for name, value in w.items():
            if name in g:
                _same(g[name], value, name, approximate, f"{case} row {w['bucket']} {w.get('group')} {name}")
    got_totals = result.totals.to_pylist()
    assert len(got_totals) == len(totals), case
    for g, w in zip(got_totals, totals, strict=True):
        for name, value in w.items():
            if name in g:
                _same(g[name], value, name, approximate, f"{case} total {g.get('group')} {name}")


def _exact(ctx: Context, query: MetricsQuery, monkeypatch: pytest.MonkeyPatch) -> trends.MetricsResult:
    with monkeypatch.context() as m:
        m.setattr(trends, "ROLLUP_MIN_RUNS", 10**12)
        return trends.metrics(ctx, ADMIN, query)


def _ranges() -> Iterator[tuple[str, datetime, datetime]]:
    d = lambda n, h=0: DAY0 + timedelta(days=n, hours=h)  # noqa: E731
    yield "entirely before the first run", d(-40), d(-10)
    yield "before data, ending in the past", d(-20), d(9)
    yield "one past day", d(14), d(15)
    yield "ending in the past", d(5), d(19)
    yield "past, over a delete and a late import", d(10), d(17)
    yield "ending at rolled_until", d(8), d(35)
    yield "spanning rolled_until", d(30), d(40)
    yield "only live days", d(36), d(40)
    yield "all of it", d(-30), d(60)
    yield "ending mid-day", d(5), d(19, 13)
    yield "starting mid-day", d(4, 23), d(21)
    # with an offset: UTC midnights in another zone's clock, and that zone's own midnights
    india = timezone(timedelta(hours=5, minutes=30))
    yield (
        "UTC midnights given at +05:30",
        d(6).replace(tzinfo=UTC).astimezone(india),
        d(26).replace(tzinfo=UTC).astimezone(india),
    )
    yield "+05:30 midnights", d(6).replace(tzinfo=india), d(26).replace(tzinfo=india)


_BUCKETS = ("day", "week", "month", "auto")
_GROUPS = (None, "flow", "status", "flow_version")


def _filters(world: World) -> list[dict[str, Any] | None]:
    big, mid, small = world.flows
    return [
        None,
        {"flow_id": {"any_": [big]}},
        {"flow_id": {"any_": [mid, small]}},
        {"status": {"any_": ["error", "aborted"]}},
        {"flow_id": {"any_": [big]}, "status": {"any_": ["success"]}},
    ]


def _grid(world: World, cases: int, seed: int) -> Iterator[tuple[str, MetricsQuery]]:
    """Every range with every group and filter; bucket and `previous` drawn per case, then a
    seeded sample (every range and bucket still appears)."""
    rng = random.Random(seed)
    combos = list(itertools.product(_ranges(), _GROUPS, _filters(world)))
    picked = rng.sample(combos, min(cases, len(combos)))
    for i, ((name, start, end), group, flt) in enumerate(picked):
        bucket = _BUCKETS[i % len(_BUCKETS)]
        previous = rng.random() < 0.8
        body = {
            "measures": list(Measure),
            "start": start,
            "end": end,
            "bucket": bucket,
            "group_by": group,
            "filter": flt,
            "previous": previous,
        }
        yield (
            f"{name} [{start:%m-%d %H:%M}, {end:%m-%d %H:%M}) bucket={bucket} group={group} filter={flt} previous={previous}",
            MetricsQuery.model_validate(body),
        )


def _check_grid(world: World, monkeypatch: pytest.MonkeyPatch, cases: int, seed: int) -> int:
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    rolled = 0
    for case, query in _grid(world, cases, seed):
        got = trends.metrics(world.ctx, ADMIN, query)
        step = got.bucket
        whole_days = query.start.time() == query.end.time() == datetime.min.time()
        # the rollup path answered exactly when it should
        assert got.percentiles_approximate == (whole_days and step in ("day", "week", "month")), case
        rolled += got.percentiles_approximate
        want = _exact(world.ctx, query, monkeypatch)
        assert not want.percentiles_approximate and want.bucket == step
        rows, totals = _oracle(world, query, step)
        _agree(want, rows, totals, "exact: " + case)
        _agree(got, rows, totals, "rollup: " + case)
    return rolled


@pytest.fixture
def world(ctx: Context) -> World:
    return _build(ctx)


def test_rollups_equal_exact_and_oracle_with_dirty_days(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _check_grid(world, monkeypatch, cases=240, seed=1) >= 80


def test_rollups_equal_exact_and_oracle_after_the_refresh(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = rollups.refresh(world.ctx, today=TODAY)
    assert result["dirty_rebuilt"] == 4 and result["disagreeing_rebuilt"] == 0
    assert _check_grid(world, monkeypatch, cases=80, seed=2) >= 20


def test_a_past_range_of_one_flow_counts_only_its_own_days(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's report: a flow trend over a past range added every rolled day after its end."""
    monkeypatch.setattr(trends, "ROLLUP_MIN_RUNS", 1)
    big = world.flows[0]
    for start, end in (
        (DAY0 - timedelta(days=30), DAY0 - timedelta(days=10)),
        (DAY0, DAY0 + timedelta(days=7)),
    ):
        query = MetricsQuery.model_validate(
            {
                "measures": ["runs", "p50_duration"],
                "start": start,
                "end": end,
                "bucket": "day",
                "previous": False,
            }
        )
        got = trends.flow_trend(world.ctx, ADMIN, big, query)
        assert got.percentiles_approximate  # the rollups answered
        want = sum(1 for r in world.runs.values() if r.flow == big and start <= r.at < end)
        assert got.totals.to_pylist()[0]["runs"] == want
        assert [r["runs"] for r in got.rows.to_pylist()] == [
            sum(1 for r in world.runs.values() if r.flow == big and b <= r.at < b + timedelta(days=1))
            for b in (start + timedelta(days=i) for i in range((end - start).days))
        ]
