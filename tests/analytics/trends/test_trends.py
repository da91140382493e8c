"""The metrics query against plain Python over the same generated runs: every measure, empty
buckets, group-by at run and node level, filters, the previous period, visibility, bad input."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.history.filters import AnyOf, ExecutionFilter
from analytics.trends import metrics as trends
from analytics.trends.metrics import MAX_BUCKETS, Measure, MetricsQuery
from tests.factories import OWNER, READER, STRANGER, make_execution
from tests.factories import ROOT as ADMIN

START = datetime(2025, 3, 10)  # a Monday
END = datetime(2025, 3, 20)
GAP = (datetime(2025, 3, 14), datetime(2025, 3, 17))  # no runs: empty buckets in the middle
MODELS = ("gpt-4o-mini", "gpt-4o")
UNPRICED = "zeta-unpriced-model"  # no price matches it
NULLABLE = {
    "failure_rate",
    "avg_duration",
    "p50_duration",
    "p90_duration",
    "p95_duration",
    "p99_duration",
    "cost",
}


@dataclass
class Node:
    node_id: str
    model: str | None
    status: str
    duration_ms: int | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None


@dataclass
class Run:
    flow_id: str
    user_id: str
    status: str
    execution_time: int
    created_at: datetime
    flow_version: str
    nodes: list[Node] = field(default_factory=list)

    @property
    def tokens_in(self) -> int | None:
        values = [n.tokens_in for n in self.nodes if n.tokens_in is not None]
        return sum(values) if values else None

    @property
    def tokens_out(self) -> int | None:
        values = [n.tokens_out for n in self.nodes if n.tokens_out is not None]
        return sum(values) if values else None

    @property
    def cost(self) -> float | None:
        values = [n.cost for n in self.nodes if n.cost is not None]
        return sum(values) if values else None


# -- the independent computation -------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (what quantile_cont computes)."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# A row for the reference: what each measure reads from a run or a node run.
Row = tuple[str, int | None, int | None, int | None, float | None]  # status, duration, in, out, cost


def expected(measure: Measure, rows: list[Row]) -> float | None:
    """None where there is nothing to measure: rates, averages, percentiles and cost of no
    runs, averages and percentiles of no durations (a gap on a chart, not a zero)."""
    statuses = [r[0] for r in rows]
    durations = [r[1] for r in rows if r[1] is not None]
    n = len(rows)
    if measure is Measure.RUNS:
        return n
    if measure.value in ("success", "error", "aborted"):
        return statuses.count(measure.value)
    if measure is Measure.FAILURE_RATE:
        return statuses.count("error") / n if n else None
    if measure is Measure.AVG_DURATION:
        return sum(durations) / len(durations) if durations else None
    if measure.value.startswith("p"):
        q = int(measure.value[1:3]) / 100
        return quantile(durations, q) if durations else None
    if measure is Measure.COST:  # the known costs summed; null when none is known (or no runs)
        known = [r[4] for r in rows if r[4] is not None]
        return math.fsum(known) if known else None
    index = {"tokens_in": 2, "tokens_out": 3}[measure.value]
    return sum(r[index] for r in rows if r[index] is not None)  # type: ignore[misc]


def run_rows(runs: list[Run]) -> list[Row]:
    return [(r.status, r.execution_time, r.tokens_in, r.tokens_out, r.cost) for r in runs]


def node_rows(runs: list[Run], node_ids: set[str] | None = None) -> list[Row]:
    return [
        (n.status, n.duration_ms, n.tokens_in, n.tokens_out, n.cost)
        for r in runs
        for n in r.nodes
        if node_ids is None or n.node_id in node_ids
    ]


def day_of(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def assert_measures(got: dict[str, Any], rows: list[Row], measures: list[Measure], where: object) -> None:
    for m in measures:
        want = expected(m, rows)
        assert close(got[m.value], want), (where, m.value, got[m.value], want)
        if m.value in ("runs", "success", "error", "aborted", "tokens_in", "tokens_out"):
            assert isinstance(got[m.value], int), (where, m.value)  # counts and sums are exact


# -- data ------------------------------------------------------------------------------------


def _node_results(
    rng: random.Random, prices: Any, day: date, errored: bool, models: tuple[str, ...] = MODELS
) -> tuple[dict, dict | None, list]:
    results: dict[str, Any] = {"input_1": {"value": "hello"}}
    nodes = [Node("input_1", None, "success", None, None, None, None)]
    errors = None
    for i, model in enumerate(models):
        if i == 1 and rng.random() < 0.4:
            continue  # the second model node is not in every run
        node_id = f"llm_{i}"
        tin, tout = rng.randrange(1, 2000), rng.randrange(1, 800)
        duration = rng.randrange(5, 4000) if rng.random() < 0.9 else None
        result: dict[str, Any] = {"content": "ok", "modelId": model}
        result["usage"] = {"prompt_tokens": tin, "completion_tokens": tout}
        if duration is not None:
            result["duration_ms"] = duration
        results[node_id] = result
        failed = errored and i == 0
        if failed:
            errors = {node_id: f"boom {rng.randrange(100)}"}
        nodes.append(
            Node(
                node_id,
                model,
                "error" if failed else "success",
                duration,
                tin,
                tout,
                prices.cost(model, day, tin, tout),
            )
        )
    return results, errors, nodes


def import_runs(
    ctx: Context, runs_spec: list[tuple[str, str, datetime]], seed: int = 1, models: tuple[str, ...] = MODELS
) -> list[Run]:
    """Runs of (flow, user, created_at) with random status, duration, nodes; saved as an admin."""
    rng = random.Random(seed)
    items, runs = [], []
    for flow_id, user_id, t in runs_spec:
        status = rng.choice(["success"] * 5 + ["error"] * 3 + ["aborted"] * 2)
        results, errors, nodes = _node_results(rng, ctx.prices, t.date(), status == "error", models)
        ms = rng.randrange(0, 60_000)
        items.append(
            make_execution(
                flow_id,
                status=status,
                execution_time=ms,
                created_at=t.isoformat(),
                user_id=user_id,
                node_results=results,
                outputs=results,
                errors=errors,
            )
        )
        version = ctx.directory.flow(flow_id).version  # type: ignore[union-attr]
        runs.append(Run(flow_id, user_id, status, ms, t, version, nodes))
    saved = ingest.save_executions(ctx, ADMIN, items)
    assert all(r.status == "stored" for r in saved), saved
    return runs


def random_times(rng: random.Random, n: int, lo: datetime, hi: datetime) -> list[datetime]:
    span = int((hi - lo).total_seconds() * 1e6)
    out: list[datetime] = []
    while len(out) < n:
        t = lo + timedelta(microseconds=rng.randrange(span))
        if not GAP[0] <= t < GAP[1]:
            out.append(t)
    return out


@dataclass
class Data:
    public: str
    private: str
    runs: list[Run]
    unpriced: str  # a private flow of the owner's whose model has no price

    def select(self, pred: Callable[[Run], bool] = lambda r: True) -> list[Run]:
        return [r for r in self.runs if pred(r)]


IS_SMALL = trends._is_small


@pytest.fixture(autouse=True, params=["scan", "fetch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both ways of computing a trend: DuckDB's grouped scan, and the
    rows fetched and aggregated in Python (what small flows get): both must agree with Python."""
    if request.param == "scan":
        monkeypatch.setattr(trends, "_is_small", lambda ctx, q: False)
    else:
        monkeypatch.setattr(trends, "_is_small", lambda ctx, q: q.group_by not in trends._NODE_GROUPS)
    return str(request.param)


@pytest.fixture
def data(ctx: Context) -> Data:
    for uid in ("owner", "reader", "stranger"):
        users.create_user(ctx, uid)
    public = flows.create_flow(
        ctx, OWNER, name="public", nodes=[{"id": "a"}], edges=[], access_control=None
    ).id
    private = flows.create_flow(ctx, OWNER, name="private", nodes=[], edges=[], access_control={}).id
    rng = random.Random(42)
    lo, hi = START - (END - START) - timedelta(days=3), END + timedelta(days=3)
    spec = [(public, rng.choice(["owner", "reader"]), t) for t in random_times(rng, 160, lo, hi)]
    spec += [(private, "owner", t) for t in random_times(rng, 60, lo, hi)]
    spec += [(public, "owner", START), (public, "reader", END)]  # start counts, end does not
    runs = import_runs(ctx, spec)
    # a flow whose models no price matches: its runs' cost is unknown (null), not 0
    unpriced = flows.create_flow(ctx, OWNER, name="unpriced", nodes=[], edges=[], access_control={}).id
    times = random_times(rng, 25, START, END)
    runs += import_runs(ctx, [(unpriced, "owner", t) for t in times], seed=3, models=(UNPRICED,))
    # a new version of the public flow, and runs of it
    flows.update_flow(ctx, OWNER, public, {"nodes": [{"id": "a"}, {"id": "b"}]})
    runs += import_runs(ctx, [(public, "owner", t) for t in random_times(rng, 30, START, END)], seed=2)
    return Data(public, private, runs, unpriced)


def in_range(r: Run, lo: datetime = START, hi: datetime = END) -> bool:
    return lo <= r.created_at < hi


def query(**kw: Any) -> MetricsQuery:
    return MetricsQuery.model_validate({"measures": list(Measure), "start": START, "end": END, **kw})


# -- every measure, per bucket and in total ----------------------------------------------------


def test_every_measure_per_day_matches_python(ctx: Context, data: Data) -> None:
    result = trends.metrics(ctx, OWNER, query(bucket="day"))
    rows = result.rows.to_pylist()
    days = [START + timedelta(days=i) for i in range(10)]
    assert [r["bucket"] for r in rows] == days  # every day, the empty ones too
    for row in rows:
        runs = data.select(lambda r, d=row["bucket"]: in_range(r) and day_of(r.created_at) == d)
        assert_measures(row, run_rows(runs), list(Measure), row["bucket"])
    empty = [r for r in rows if GAP[0] <= r["bucket"] < GAP[1]]
    assert len(empty) == 3
    for r in empty:  # counts are 0; rates, averages, percentiles and cost are gaps
        assert all(r[m] == 0 for m in ("runs", "success", "error", "aborted", "tokens_in", "tokens_out"))
        assert all(r[m] is None for m in NULLABLE), r
    assert result.bucket == "day" and result.group_by is None
    assert result.percentiles_approximate is False and result.tokens_estimated is False
    assert result.rows.column_names == ["bucket", *(m.value for m in Measure)]


def test_totals_and_previous_period(ctx: Context, data: Data) -> None:
    result = trends.metrics(ctx, OWNER, query(bucket="day"))
    (total,) = result.totals.to_pylist()
    assert result.previous_start == START - (END - START)
    current = run_rows(data.select(in_range))
    previous = run_rows(data.select(lambda r: in_range(r, START - (END - START), START)))
    assert current and previous
    for m in Measure:
        value, prev = expected(m, current), expected(m, previous)
        assert close(total[m.value], value), m
        assert close(total[f"{m.value}_previous"], prev), m
        assert close(total[f"{m.value}_change"], value - prev), m
        assert close(total[f"{m.value}_change_rel"], (value - prev) / prev), m


def test_previous_zero_gives_null_relative_change(ctx: Context, data: Data) -> None:
    far = datetime(2024, 6, 1)
    only = import_runs(ctx, [(data.public, "owner", far + timedelta(hours=1))], seed=3)
    q = query(start=far, end=far + timedelta(days=1), measures=["runs", "cost"])
    (total,) = trends.metrics(ctx, OWNER, q).totals.to_pylist()
    assert (total["runs"], total["runs_previous"], total["runs_change"]) == (1, 0, 1)
    assert total["runs_change_rel"] is None and total["cost_change_rel"] is None
    assert close(total["cost"], only[0].cost)
    no_prev = trends.metrics(ctx, OWNER, query(previous=False, measures=["runs"]))
    (total,) = no_prev.totals.to_pylist()
    assert total["runs_previous"] is None and total["runs_change"] is None
    assert no_prev.previous_start is None


def test_a_range_without_runs_has_zero_counts_and_null_measures(ctx: Context, data: Data) -> None:
    q = query(start=datetime(2020, 1, 1), end=datetime(2020, 1, 2), bucket="hour")
    result = trends.metrics(ctx, OWNER, q)
    assert result.rows.num_rows == 24
    for r in result.rows.to_pylist():
        assert all((v is None) if k in NULLABLE else (v == 0) for k, v in r.items() if k != "bucket"), r
    (total,) = result.totals.to_pylist()
    assert total["runs"] == 0 and total["tokens_in"] == 0
    for m in NULLABLE:
        assert total[m] is None and total[f"{m}_previous"] is None and total[f"{m}_change"] is None
    grouped = trends.metrics(
        ctx, OWNER, query(start=datetime(2020, 1, 1), end=datetime(2020, 1, 2), group_by="flow")
    )
    assert grouped.rows.num_rows == 0 and grouped.totals.num_rows == 0  # no group has runs


@pytest.mark.parametrize(
    ("bucket", "floor"),
    [
        ("hour", lambda t: t.replace(minute=0, second=0, microsecond=0)),
        ("week", lambda t: day_of(t) - timedelta(days=t.weekday())),
        ("month", lambda t: datetime(t.year, t.month, 1)),
    ],
)
def test_other_buckets(ctx: Context, data: Data, bucket: str, floor: Callable[[datetime], datetime]) -> None:
    measures = [Measure.RUNS, Measure.ERROR, Measure.P90_DURATION, Measure.TOKENS_OUT]
    rows = trends.metrics(ctx, OWNER, query(bucket=bucket, measures=measures)).rows.to_pylist()
    assert rows[0]["bucket"] == floor(START)
    assert [r["bucket"] for r in rows] == sorted({floor(START + timedelta(hours=h)) for h in range(240)})
    for row in rows:
        runs = data.select(lambda r, b=row["bucket"]: in_range(r) and floor(r.created_at) == b)
        assert_measures(row, run_rows(runs), measures, row["bucket"])


# -- group-by ------------------------------------------------------------------------------------

RUN_GROUPS: dict[str, Callable[[Run], str]] = {
    "flow": lambda r: r.flow_id,
    "flow_version": lambda r: r.flow_version,
    "status": lambda r: r.status,
    "user": lambda r: r.user_id,
}


@pytest.mark.parametrize("group_by", list(RUN_GROUPS))
def test_group_by_run_dimensions(ctx: Context, data: Data, group_by: str) -> None:
    key = RUN_GROUPS[group_by]
    result = trends.metrics(ctx, OWNER, query(bucket="day", group_by=group_by))
    groups = {key(r) for r in data.select(in_range)}
    assert len(groups) >= 2
    rows = result.rows.to_pylist()
    assert len(rows) == 10 * len(groups)  # every (bucket, group): zeros where no run
    assert {r["group"] for r in rows} == groups
    for row in rows:
        runs = data.select(
            lambda r, b=row["bucket"], g=row["group"]: (
                in_range(r) and day_of(r.created_at) == b and key(r) == g
            )
        )
        assert_measures(row, run_rows(runs), list(Measure), (row["bucket"], row["group"]))
    totals = result.totals.to_pylist()
    assert [t["runs"] for t in totals] == sorted((t["runs"] for t in totals), reverse=True)
    for t in totals:
        runs = data.select(lambda r, g=t["group"]: in_range(r) and key(r) == g)
        prev = data.select(lambda r, g=t["group"]: in_range(r, START - (END - START), START) and key(r) == g)
        assert_measures(t, run_rows(runs), list(Measure), t["group"])
        assert t["runs_previous"] == len(prev)


def test_group_by_node(ctx: Context, data: Data) -> None:
    result = trends.metrics(ctx, OWNER, query(bucket="day", group_by="node"))
    rows = result.rows.to_pylist()
    assert {r["group"] for r in rows} == {"input_1", "llm_0", "llm_1"}
    assert len(rows) == 30
    for row in rows:
        runs = data.select(lambda r, b=row["bucket"]: in_range(r) and day_of(r.created_at) == b)
        assert_measures(row, node_rows(runs, {row["group"]}), list(Measure), (row["bucket"], row["group"]))
    llm0 = next(t for t in result.totals.to_pylist() if t["group"] == "llm_0")
    assert 0 < llm0["error"] < llm0["runs"]  # the node's own status, not the run's
    assert llm0["runs"] == len(data.select(in_range))


def test_group_by_model_counts_node_runs_and_skips_nodes_without_model(ctx: Context, data: Data) -> None:
    result = trends.metrics(ctx, OWNER, query(bucket="week", group_by="model"))
    totals = {t["group"]: t for t in result.totals.to_pylist()}
    assert set(totals) == {*MODELS, UNPRICED}
    assert totals[UNPRICED]["runs"] > 0 and totals[UNPRICED]["cost"] is None  # unknown, not $0
    for model, t in totals.items():
        rows = [
            (n.status, n.duration_ms, n.tokens_in, n.tokens_out, n.cost)
            for r in data.select(in_range)
            for n in r.nodes
            if n.model == model
        ]
        assert_measures(t, rows, list(Measure), model)


def test_max_groups_keeps_the_busiest(ctx: Context, data: Data) -> None:
    result = trends.metrics(ctx, OWNER, query(group_by="node", max_groups=2, measures=["runs"]))
    assert result.groups_truncated is True
    kept = [t["group"] for t in result.totals.to_pylist()]
    assert len(kept) == 2 and "llm_1" not in kept  # the second model node runs least
    assert {r["group"] for r in result.rows.to_pylist()} == set(kept)
    assert trends.metrics(ctx, OWNER, query(group_by="node", measures=["runs"])).groups_truncated is False


# -- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "pred"),
    [
        ({"status": {"any_": ["error", "aborted"]}}, lambda r: r.status in ("error", "aborted")),
        ({"user_id": {"any_": ["reader"]}}, lambda r: r.user_id == "reader"),
        ({"execution_time": {"ge_": 10_000, "le_": 30_000}}, lambda r: 10_000 <= r.execution_time <= 30_000),
        ({"node_id": {"any_": ["llm_1"]}}, lambda r: any(n.node_id == "llm_1" for n in r.nodes)),
        ({"model": {"any_": ["gpt-4o"]}}, lambda r: any(n.model == "gpt-4o" for n in r.nodes)),
        ({"error": {"contains_": "BOOM"}}, lambda r: any(n.status == "error" for n in r.nodes)),
        (
            {"created_at": {"after_": "2025-03-12T00:00:00Z"}, "user_id": {"any_": ["owner"]}},
            lambda r: r.created_at >= datetime(2025, 3, 12) and r.user_id == "owner",
        ),
    ],
)
def test_filters_are_the_search_filters(
    ctx: Context, data: Data, flt: dict, pred: Callable[[Run], bool]
) -> None:
    measures = [Measure.RUNS, Measure.FAILURE_RATE, Measure.P50_DURATION, Measure.COST]
    result = trends.metrics(ctx, OWNER, query(bucket="day", measures=measures, filter=flt))
    for row in result.rows.to_pylist():
        runs = data.select(lambda r, d=row["bucket"]: in_range(r) and day_of(r.created_at) == d and pred(r))
        assert_measures(row, run_rows(runs), measures, (flt, row["bucket"]))
    (total,) = result.totals.to_pylist()
    prev = data.select(lambda r: in_range(r, START - (END - START), START) and pred(r))
    assert total["runs_previous"] == len(prev)


def test_filter_selects_runs_at_node_level(ctx: Context, data: Data) -> None:
    flt = {"status": {"any_": ["success"]}}
    result = trends.metrics(ctx, OWNER, query(group_by="node", filter=flt, measures=["runs", "error"]))
    totals = {t["group"]: t for t in result.totals.to_pylist()}
    ok = data.select(lambda r: in_range(r) and r.status == "success")
    assert totals["llm_0"]["runs"] == len(ok) and totals["llm_0"]["error"] == 0


# -- visibility ----------------------------------------------------------------------------------


def test_reader_sees_only_own_runs_and_no_private_flow(ctx: Context, data: Data) -> None:
    mine = lambda r: r.flow_id == data.public and r.user_id == "reader"  # noqa: E731
    result = trends.metrics(ctx, READER, query(bucket="day", group_by="user"))
    assert {r["group"] for r in result.rows.to_pylist()} == {"reader"}
    (total,) = result.totals.to_pylist()
    assert_measures(total, run_rows(data.select(lambda r: in_range(r) and mine(r))), list(Measure), "reader")
    flows_seen = trends.metrics(ctx, READER, query(group_by="flow", measures=["runs"]))
    assert [t["group"] for t in flows_seen.totals.to_pylist()] == [data.public]
    nodes = trends.metrics(ctx, READER, query(group_by="node", measures=["runs"]))
    assert {t["group"]: t["runs"] for t in nodes.totals.to_pylist()}["input_1"] == len(
        data.select(lambda r: in_range(r) and mine(r))
    )
    # a filter cannot widen what is visible
    asked = trends.metrics(
        ctx, READER, query(filter={"flow_id": {"any_": [data.private]}}, measures=["runs"])
    )
    assert asked.totals.to_pylist()[0]["runs"] == 0


def test_stranger_sees_nothing_of_a_private_flow(ctx: Context, data: Data) -> None:
    for group_by in ("flow", "user", "node", "flow_version"):
        result = trends.metrics(ctx, STRANGER, query(group_by=group_by, measures=["runs"]))
        labels = {t["group"] for t in result.totals.to_pylist()}
        assert data.private not in labels and "owner" not in labels, group_by
        assert sum(t["runs"] for t in result.totals.to_pylist()) == 0
    admin = trends.metrics(ctx, ADMIN, query(group_by="flow", measures=["runs"]))
    assert {t["group"] for t in admin.totals.to_pylist()} == {data.public, data.private, data.unpriced}


def test_flow_trend_checks_the_flow_first_and_narrows_to_it(ctx: Context, data: Data) -> None:
    with pytest.raises(NotFound):
        trends.flow_trend(ctx, OWNER, "no-such-flow", query())
    with pytest.raises(AccessDenied):
        trends.flow_trend(ctx, STRANGER, data.private, query())
    other = query(
        measures=["runs"], filter={"flow_id": {"any_": [data.public]}, "status": {"any_": ["error"]}}
    )
    (total,) = trends.flow_trend(ctx, OWNER, data.private, other).totals.to_pylist()
    assert total["runs"] == len(
        data.select(lambda r: in_range(r) and r.flow_id == data.private and r.status == "error")
    )
    (mine,) = trends.flow_trend(ctx, READER, data.public, query(measures=["runs"])).totals.to_pylist()
    assert mine["runs"] == len(
        data.select(lambda r: in_range(r) and r.flow_id == data.public and r.user_id == "reader")
    )


def test_tokens_estimated_is_flagged(ctx: Context, data: Data) -> None:
    t = datetime(2024, 1, 1, 12)
    saved = ingest.save_executions(
        ctx, ADMIN, [make_execution(data.public, created_at=t.isoformat(), user_id="owner")]
    )
    assert saved[0].status == "stored"
    q = query(start=datetime(2024, 1, 1), end=datetime(2024, 1, 2), measures=["tokens_out"])
    assert trends.metrics(ctx, OWNER, q).tokens_estimated is True


# -- buckets ---------------------------------------------------------------------------------------


def test_bucket_starts_agree_with_duckdb(ctx: Context) -> None:
    rng = random.Random(5)
    times = [datetime(1971, 1, 1) + timedelta(seconds=rng.randrange(60 * 365 * 86400)) for _ in range(300)]
    for step in trends._LADDER:
        got = [trends.bucket_starts(step, t, t + timedelta(microseconds=1))[0] for t in times]
        want = ctx.store.read(
            lambda c, s=step: c.execute(
                "SELECT [time_bucket(?::INTERVAL, t) FOR t IN ?::TIMESTAMP[]]", [s.interval, times]
            ).fetchall()[0][0]
        )
        assert got == want, step.name


@pytest.mark.parametrize(
    ("span", "name"),
    [
        (timedelta(hours=1), "minute"),
        (timedelta(hours=4), "5 minutes"),
        (timedelta(days=1), "15 minutes"),
        (timedelta(days=3), "hour"),
        (timedelta(days=10), "6 hours"),
        (timedelta(days=90), "day"),
        (timedelta(days=365), "week"),
        (timedelta(days=3650), "month"),
    ],
)
def test_auto_bucket_aims_at_about_fifty(ctx: Context, span: timedelta, name: str) -> None:
    result = trends.metrics(ctx, ADMIN, query(start=START, end=START + span, measures=["runs"]))
    assert result.bucket == name
    assert trends.metrics(ctx, ADMIN, query(start=START, end=START + span, bucket="auto")).bucket == name
    assert 10 <= result.rows.num_rows <= 150


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"measures": ["nope"]}, ("measures", 0)),
        ({"measures": []}, ("measures",)),
        ({"measures": "runs"}, ("measures",)),
        ({"bucket": "year"}, ("bucket",)),
        ({"group_by": "node_type"}, ("group_by",)),
        ({"start": "yesterday"}, ("start",)),
        ({"start": None}, ("start",)),
        ({"start": "1960-01-01T00:00:00"}, ("start",)),
        ({"end": "2300-01-01T00:00:00"}, ("end",)),
        ({"start": datetime(2000, 1, 1), "end": datetime(2000, 3, 25), "bucket": "hour"}, ("bucket",)),
        ({"start": datetime(1970, 1, 1), "end": datetime(2199, 1, 1)}, ("bucket",)),  # auto: months
        ({"max_groups": 0}, ("max_groups",)),
        ({"max_groups": 101}, ("max_groups",)),
        ({"previous": "maybe"}, ("previous",)),
        ({"filter": {"colour": {"any_": ["x"]}}}, ("filter", "colour")),
        ({"filter": {"status": {"any_": ["lost"]}}}, ("filter", "status")),
        ({"filter": "status = 'error'"}, ("filter",)),
        ({"order": "desc"}, ("order",)),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        query(**change)
    assert next(tuple(e["loc"][: len(loc)]) for e in info.value.errors()) == loc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": START}, "start must be earlier than end"),
        ({"end": START - timedelta(seconds=1)}, "start must be earlier than end"),
        (
            {"filter": {"execution_time": {"ge_": 5, "le_": 1}}},
            "filter.execution_time: ge_ must not be greater than le_",
        ),
        (
            {
                "filter": {
                    "created_at": {"after_": START + timedelta(days=2), "before_": START + timedelta(days=1)}
                }
            },
            "filter.created_at: after_ must be earlier than before_",
        ),
    ],
)
def test_a_range_in_the_wrong_order_is_a_message(
    ctx: Context, data: Data, change: dict[str, Any], message: str
) -> None:
    """It fits the schema (the query is built) but means nothing: InvalidInput, a message."""
    with pytest.raises(InvalidInput) as info:
        trends.metrics(ctx, OWNER, query(**change))
    assert info.value.detail == message


def test_bucket_limit_is_inclusive() -> None:
    start = datetime(2000, 1, 1)
    assert query(start=start, end=start + timedelta(hours=MAX_BUCKETS), bucket="hour")
    with pytest.raises(ValidationError):
        query(start=start, end=start + timedelta(hours=MAX_BUCKETS, microseconds=1), bucket="hour")


def test_timezones_are_converted_to_utc(ctx: Context, data: Data) -> None:
    q = query(start="2025-03-10T02:00:00+02:00", end="2025-03-20T00:00:00Z", measures=["runs"])
    assert q.start == START
    assert trends.metrics(ctx, OWNER, q).start == START


def test_filter_object_is_accepted_as_a_model(ctx: Context, data: Data) -> None:
    q = MetricsQuery(
        measures=[Measure.RUNS], start=START, end=END, filter=ExecutionFilter(user_id=AnyOf(any_=["reader"]))
    )
    (total,) = trends.metrics(ctx, OWNER, q).totals.to_pylist()
    assert total["runs"] == len(data.select(lambda r: in_range(r) and r.user_id == "reader"))


def test_node_durations_ignore_nodes_that_reported_none(data: Data) -> None:
    # the reference itself: nodes without duration_ms exist in the data, so the check is real
    assert any(n.duration_ms is None for r in data.runs for n in r.nodes if n.model)


def test_small_flows_are_fetched_big_ones_scanned(
    ctx: Context, data: Data, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_flow = query(filter={"flow_id": {"any_": [data.public]}})
    public_runs = len(data.select(lambda r: r.flow_id == data.public))
    assert IS_SMALL(ctx, one_flow)
    assert not IS_SMALL(ctx, query())  # every flow: no flow filter to bound it
    assert not IS_SMALL(ctx, query(group_by="node", filter={"flow_id": {"any_": [data.public]}}))
    monkeypatch.setattr(trends, "SMALL_SCOPE_RUNS", public_runs - 1)
    assert not IS_SMALL(ctx, one_flow)
