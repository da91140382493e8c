"""Insights on a real DuckDB file, each checked against plain Python over the same runs.

Node breakdown, failure signatures, reliability KPIs, version regressions and anomalies; the
access order (unknown flow 404 before stranger 403) and row visibility (a reader sees only their
own runs, in every one of them); bad input.
"""

from __future__ import annotations

import math
import random
import statistics
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.access import users
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, InvalidInput, NotFound
from analytics.flows import registry as flows
from analytics.history import ingest
from analytics.insights import anomalies, breakdown, regressions, reliability, signatures
from tests.factories import OWNER, READER, STRANGER, make_execution
from tests.factories import ROOT as ADMIN

BASE = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def flow_id(ctx: Context) -> str:
    for uid in ("owner", "reader", "stranger"):
        users.create_user(ctx, uid)
    return flows.create_flow(ctx, OWNER, name="f", nodes=[], edges=[], access_control=None).id


def _store(ctx: Context, runs: list[dict[str, Any]]) -> list[str]:
    results = ingest.save_executions(ctx, ADMIN, runs)
    assert all(r.status == "stored" for r in results), results
    return [r.id for r in results if r.id]


def _run(flow_id: str, at: datetime, *, user: str = "owner", **kw: Any) -> dict[str, Any]:
    nodes = kw.pop("nodes", None)
    if nodes is not None:
        kw["node_results"] = kw["outputs"] = nodes
    return make_execution(flow_id, created_at=at.isoformat(), user_id=user, **kw)


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, DuckDB's quantile_cont)."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return a == b


# -- access and input ---------------------------------------------------------------------------

CALLS = [
    lambda ctx, v, f, **kw: breakdown.node_breakdown(ctx, v, f, **kw),
    lambda ctx, v, f, **kw: signatures.failure_signatures(ctx, v, f, **kw),
    lambda ctx, v, f, **kw: reliability.reliability(ctx, v, f, **kw),
    lambda ctx, v, f, **kw: regressions.version_regressions(ctx, v, f, **kw),
    lambda ctx, v, f, **kw: anomalies.find_anomalies(ctx, v, f, **kw),
]


@pytest.mark.parametrize("call", CALLS, ids=["nodes", "failures", "reliability", "versions", "anomalies"])
def test_access_order_and_range(ctx: Context, flow_id: str, call: Any) -> None:
    private = flows.create_flow(ctx, OWNER, name="p", nodes=[], edges=[], access_control={}).id
    with pytest.raises(NotFound):
        call(ctx, STRANGER, "no-such-flow", start=BASE, end=BASE)  # 404 before the bad range
    with pytest.raises(AccessDenied):
        call(ctx, STRANGER, private, start=BASE, end=BASE)  # 403 before the bad range
    with pytest.raises(InvalidInput) as bad:
        call(ctx, OWNER, flow_id, start=BASE, end=BASE)
    assert bad.value.field == "start"
    call(ctx, READER, flow_id)  # a public flow: readable, empty
    call(ctx, OWNER, private, start=BASE, end=BASE + timedelta(days=1))


@pytest.mark.parametrize(
    ("call", "kw", "field"),
    [
        (signatures.failure_signatures, {"limit": 0}, "limit"),
        (regressions.version_regressions, {"min_runs": 1}, "min_runs"),
        (regressions.version_regressions, {"alpha": 1.0}, "alpha"),
        (anomalies.find_anomalies, {"metric": "tokens"}, "metric"),
        (anomalies.find_anomalies, {"window": 9}, "window"),
        (anomalies.find_anomalies, {"threshold": 0}, "threshold"),
        (anomalies.find_anomalies, {"limit": 1001}, "limit"),
    ],
)
def test_bad_input_names_the_field(ctx: Context, flow_id: str, call: Any, kw: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        call(ctx, OWNER, flow_id, **kw)
    assert bad.value.field == field


# -- per-node breakdown -------------------------------------------------------------------------


def _node_runs(flow_id: str, rng: random.Random, n: int, user: str, t0: datetime) -> list[dict[str, Any]]:
    runs = []
    for i in range(n):
        total = rng.randint(100, 3000)
        model_ms = rng.randint(0, total)
        nodes: dict[str, Any] = {
            "input_1_a": {"value": "hi"},  # never timed
            "model_2_b": {
                "modelId": "gpt-4o-mini",
                "duration_ms": model_ms,
                "usage": {"prompt_tokens": rng.randint(1, 500), "completion_tokens": rng.randint(1, 900)},
            },
            "tool_3_c": {"duration_ms": rng.randint(0, 400)},
            "model_4_d": {"model": "homegrown-7b", "content": "x" * rng.randint(0, 80)},  # tokens estimated
        }
        errors = {"tool_3_c": f"Timeout after {rng.randint(1, 999)} ms"} if rng.random() < 0.3 else None
        status = "error" if errors else "success"
        runs.append(
            _run(
                flow_id,
                t0 + timedelta(minutes=i),
                user=user,
                nodes=nodes,
                errors=errors,
                status=status,
                execution_time=total if i % 17 else 0,
            )  # some runs of 0 ms: no share
        )
    return runs


def _expected_breakdown(ctx: Context, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    per: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        day = datetime.fromisoformat(run["created_at"]).date()
        for node_id, result in run["node_results"].items():
            d = per[node_id]
            d["error"].append(node_id in (run["errors"] or {}))
            ms = result.get("duration_ms")
            if ms is not None:
                d["ms"].append(ms)
                if run["execution_time"] > 0:
                    d["share"].append(ms / run["execution_time"])
            usage = result.get("usage")
            if usage:
                d["in"].append(usage["prompt_tokens"])
                d["out"].append(usage["completion_tokens"])
                d["cost"].append(
                    ctx.prices.cost("gpt-4o-mini", day, usage["prompt_tokens"], usage["completion_tokens"])
                )
    out = {}
    for node_id, d in per.items():
        out[node_id] = {
            "runs": len(d["error"]),
            "errors": sum(d["error"]),
            "timed_runs": len(d["ms"]),
            "total_ms": sum(d["ms"]) if d["ms"] else None,
            "p50_ms": _quantile(d["ms"], 0.5),
            "p95_ms": _quantile(d["ms"], 0.95),
            "share_p50": _quantile(d["share"], 0.5),
            "share_p95": _quantile(d["share"], 0.95),
            "tokens_in": sum(d["in"]) if d["in"] else None,
            "tokens_out": sum(d["out"]) if d["out"] else None,
            "cost": sum(d["cost"]) if d["cost"] else None,
        }
    return out


def test_node_breakdown_matches_python(ctx: Context, flow_id: str) -> None:
    rng = random.Random(3)
    owner_runs = _node_runs(flow_id, rng, 60, "owner", BASE)
    reader_runs = _node_runs(flow_id, rng, 15, "reader", BASE + timedelta(days=1))
    _store(ctx, owner_runs + reader_runs)
    for viewer, runs in ((OWNER, owner_runs + reader_runs), (READER, reader_runs)):
        got = {r["node_id"]: r for r in breakdown.node_breakdown(ctx, viewer, flow_id).to_pylist()}
        want = _expected_breakdown(ctx, runs)
        assert set(got) == set(want)
        for node_id, exp in want.items():
            row = got[node_id]
            assert row["failure_rate"] == exp["errors"] / exp["runs"]
            for key, value in exp.items():
                if node_id == "model_4_d" and key.startswith("tokens"):
                    continue  # estimated from text length: only the flag is checked here
                assert _close(row[key], value), (viewer, node_id, key, row[key], value)
        assert got["model_4_d"]["tokens_estimated"] and not got["model_2_b"]["tokens_estimated"]
        assert got["input_1_a"]["p50_ms"] is None and got["input_1_a"]["timed_runs"] == 0
        assert got["model_2_b"]["node_type"] == "model" and got["model_2_b"]["model"] == "gpt-4o-mini"
    # heaviest first: the untimed nodes come last
    order = [r["node_id"] for r in breakdown.node_breakdown(ctx, OWNER, flow_id).to_pylist()]
    assert set(order[-2:]) == {"input_1_a", "model_4_d"}
    # a time range: only the reader's day
    ranged = breakdown.node_breakdown(ctx, OWNER, flow_id, start=BASE + timedelta(days=1))
    assert {r["node_id"]: r["runs"] for r in ranged.to_pylist()}["tool_3_c"] == 15


# -- failure signatures -------------------------------------------------------------------------


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


TEMPLATES: dict[str, tuple[str, Any]] = {
    # key: (node, message maker); each key must come out as exactly one signature
    "timeout": (
        "tool_3_c",
        lambda r: f"Timeout after {r.randint(1, 99999)} ms calling req_{_hex(r, 6)}Z{r.randint(1, 9)}",
    ),
    "missing": (
        "tool_3_c",
        lambda r: (
            f"User '{r.choice(['ann', 'bo b', 'c.d'])}' not found (id {uuid.UUID(int=r.getrandbits(128))})"
        ),
    ),
    "model": (
        "model_2_b",
        lambda r: (
            f'Model "gpt-{r.randint(3, 5)}" rate limited; retry in {r.random() * 9:.2f}s, trace 0x{_hex(r, 8)}'
        ),
    ),
    "global": (
        "global",
        lambda r: (
            f"Flow failed at 2026-01-0{r.randint(1, 9)}T1{r.randint(0, 9)}:3{r.randint(0, 9)}:00.{r.randint(1, 999)}Z "
            f"in node model_{r.randint(10**12, 10**13)}_{_hex(r, 9)}, can't continue (hash {_hex(r, 40)})"
        ),
    ),
}
SIGNATURES = {
    "timeout": "Timeout after <n> ms calling <id>",
    "missing": "User <str> not found (id <uuid>)",
    "model": "Model <str> rate limited; retry in <n>s, trace <hex>",
    "global": "Flow failed at <ts> in node <id>, can't continue (hash <hex>)",
}


def test_failure_signatures_group_what_differs_only_in_ids(ctx: Context, flow_id: str) -> None:
    rng = random.Random(11)
    end = BASE + timedelta(days=30)
    runs, made = [], []  # made: (user, template key, at, message)
    for i in range(120):
        at = end - timedelta(hours=rng.randint(1, 24 * 20))
        user = "reader" if i % 4 == 0 else "owner"
        keys = rng.sample(list(TEMPLATES), rng.randint(0, 2))
        errors = {}
        for key in keys:
            node, make = TEMPLATES[key]
            if node in errors:
                continue  # one error per node and run
            errors[node] = make(rng)
            made.append((user, key, at, errors[node]))
        runs.append(
            _run(flow_id, at, user=user, status="error" if errors else "success", errors=errors or None)
        )
    _store(ctx, runs)

    for viewer in (OWNER, READER):
        mine = [m for m in made if viewer is OWNER or m[0] == "reader"]
        got = {
            (r["node_id"], r["signature"]): r
            for r in signatures.failure_signatures(ctx, viewer, flow_id, end=end).to_pylist()
        }
        by_key: dict[str, list] = defaultdict(list)
        for _, key, at, message in mine:
            by_key[key].append((at, message))
        assert set(got) == {(TEMPLATES[k][0], SIGNATURES[k]) for k in by_key}
        for key, seen in by_key.items():
            row = got[(TEMPLATES[key][0], SIGNATURES[key])]
            times = [t for t, _ in seen]
            assert row["count"] == len(seen)
            assert (row["first_seen"], row["last_seen"]) == (min(times), max(times))
            assert (max(times), row["example"]) in seen  # the latest message (any of a tie)
            assert row["last_24h"] == sum(t >= end - timedelta(days=1) for t in times)
            assert row["last_7d"] == sum(t >= end - timedelta(days=7) for t in times)
            prev = sum(end - timedelta(days=14) <= t < end - timedelta(days=7) for t in times)
            assert row["prev_7d"] == prev
    # a range narrows counts, the trend still looks back from `end`
    start = end - timedelta(days=3)
    ranged = signatures.failure_signatures(ctx, OWNER, flow_id, start=start, end=end).to_pylist()
    expected = defaultdict(int)
    for _, key, at, _ in made:
        if at >= start:
            expected[SIGNATURES[key]] += 1
    assert {r["signature"]: r["count"] for r in ranged} == expected
    assert signatures.failure_signatures(ctx, OWNER, flow_id, end=end, limit=2).num_rows == 2


def test_signature_trend_labels(ctx: Context, flow_id: str) -> None:
    end = BASE + timedelta(days=60)
    plan = {  # node -> hours before `end` of each occurrence
        "rising_1": [1, 30, 50, 200],  # last 7 d: 3, previous: 1
        "falling_1": [30, 200, 210, 220],  # 1 vs 3
        "steady_1": [30, 40, 200, 210],  # 2 vs 2
        "quiet_1": [24 * 20],  # nothing in 14 days
    }
    _store(
        ctx,
        [
            _run(flow_id, end - timedelta(hours=h), status="error", errors={node: f"boom {h}"})
            for node, hours in plan.items()
            for h in hours
        ],
    )
    got = {
        r["node_id"]: r["trend"]
        for r in signatures.failure_signatures(ctx, OWNER, flow_id, end=end).to_pylist()
    }
    assert got == {node: node.split("_")[0] for node in plan}


# -- reliability --------------------------------------------------------------------------------


def _expected_reliability(runs: list[tuple[datetime, str]], as_of: datetime) -> dict[str, Any]:
    """Plain loop over (created_at, status) in order; aborted is skipped."""
    longest = current = 0
    current_start = longest_start = None
    recoveries = []
    for at, status in runs:
        if status == "error":
            if current == 0:
                current_start = at
            current += 1
            if current > longest:
                longest, longest_start = current, current_start
        elif status == "success":
            if current:
                recoveries.append((at - current_start).total_seconds())
            current, current_start = 0, None
    successes = [at for at, s in runs if s == "success"]
    return {
        "runs": len(runs),
        "success_count": len(successes),
        "error_count": sum(s == "error" for _, s in runs),
        "aborted_count": sum(s == "aborted" for _, s in runs),
        "last_success_at": max(successes) if successes else None,
        "seconds_since_last_success": (as_of - max(successes)).total_seconds() if successes else None,
        "current_failure_streak": current,
        "current_streak_started_at": current_start,
        "longest_failure_streak": longest,
        "longest_streak_started_at": longest_start,
        "recovered_streaks": len(recoveries),
        "mttr_seconds": statistics.fmean(recoveries) if recoveries else None,
    }


def test_reliability_small_known_sequence(ctx: Context, flow_id: str) -> None:
    statuses = [
        "error",
        "success",
        "error",
        "aborted",
        "error",
        "success",
        "error",
        "error",
        "aborted",
        "error",
    ]
    times = [BASE + timedelta(minutes=7 * i) for i in range(len(statuses))]
    _store(ctx, [_run(flow_id, t, status=s) for t, s in zip(times, statuses, strict=True)])
    end = BASE + timedelta(days=1)
    r = reliability.reliability(ctx, OWNER, flow_id, end=end)
    # aborted is skipped: error, aborted, error is one streak of 2, recovered 21 minutes on
    assert (r.longest_failure_streak, r.current_failure_streak, r.recovered_streaks) == (3, 3, 2)
    assert r.mttr_seconds == (7 * 60 + 21 * 60) / 2
    assert r.current_streak_started_at == times[6] and r.longest_streak_started_at == times[6]
    assert r.seconds_since_last_success == (end - times[5]).total_seconds()
    assert r.as_of == end


def test_reliability_matches_python(ctx: Context, flow_id: str) -> None:
    rng = random.Random(5)
    runs = []
    for i in range(300):
        user = "reader" if i % 3 == 0 else "owner"
        status = rng.choices(["success", "error", "aborted"], [0.5, 0.4, 0.1])[0]
        runs.append((BASE + timedelta(seconds=rng.randint(0, 10**6)), status, user))
    _store(ctx, [_run(flow_id, t, user=u, status=s) for t, s, u in runs])
    end = BASE + timedelta(days=30)
    for viewer, start in ((OWNER, None), (READER, None), (OWNER, BASE + timedelta(days=5))):
        seen = sorted(
            (t, s) for t, s, u in runs if (viewer is OWNER or u == "reader") and (start is None or t >= start)
        )
        got = reliability.reliability(ctx, viewer, flow_id, start=start, end=end)
        for key, value in _expected_reliability(seen, end).items():
            assert _close(getattr(got, key), value), (key, getattr(got, key), value)


def test_reliability_without_runs(ctx: Context, flow_id: str) -> None:
    r = reliability.reliability(ctx, OWNER, flow_id)
    assert (r.runs, r.longest_failure_streak, r.current_failure_streak, r.mttr_seconds) == (0, 0, 0, None)
    assert r.last_success_at is None and r.seconds_since_last_success is None


def test_a_success_stamped_ahead_of_the_clock_is_just_now(ctx: Context, flow_id: str) -> None:
    """A run may be stamped up to a day ahead (a client's clock): it is 0 s ago, never less."""
    ahead = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=12)
    _store(ctx, [_run(flow_id, ahead, status="success")])
    r = reliability.reliability(ctx, OWNER, flow_id)
    assert r.last_success_at == ahead and r.seconds_since_last_success == 0.0


# -- version regressions ------------------------------------------------------------------------


def _mann_whitney_by_pairs(x0: list[float], x1: list[float]) -> float:
    """Two-sided p from U counted over all pairs, tie-corrected variance, continuity 0.5."""
    u1 = sum((b > a) + 0.5 * (b == a) for a in x0 for b in x1)
    n0, n1 = len(x0), len(x1)
    n = n0 + n1
    counts: dict[float, int] = defaultdict(int)
    for v in x0 + x1:
        counts[v] += 1
    ties = sum(t**3 - t for t in counts.values())
    sigma = math.sqrt(n0 * n1 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = max(abs(u1 - n0 * n1 / 2) - 0.5, 0) / sigma
    return 2 * (1 - statistics.NormalDist().cdf(z))


def _z_test(e0: int, n0: int, e1: int, n1: int) -> float:
    p = (e0 + e1) / (n0 + n1)
    z = (e1 / n1 - e0 / n0) / math.sqrt(p * (1 - p) * (1 / n0 + 1 / n1))
    return 2 * (1 - statistics.NormalDist().cdf(abs(z)))


def test_version_regressions_match_python(ctx: Context, flow_id: str) -> None:
    rng = random.Random(9)
    # (runs, error probability, duration mean): v2 fails and slows a lot, v3 has too few runs
    plan = [(45, 0.1, 1000), (40, 0.5, 1600), (12, 0.0, 400)]
    made: list[list[tuple[str, int]]] = []  # per version: (status, execution_time)
    t = BASE
    for k, (n, p_err, mean) in enumerate(plan):
        if k:
            flows.update_flow(ctx, OWNER, flow_id, {"nodes": [{"id": f"v{k}"}]})
        runs = []
        for i in range(n):
            t += timedelta(minutes=1)
            status = "error" if rng.random() < p_err else "success"
            ms = max(1, int(rng.gauss(mean, 150))) // 10 * 10  # coarse: ties on purpose
            user = "reader" if (k == 0 and i < 5) else "owner"
            runs.append(_run(flow_id, t, user=user, status=status, execution_time=ms))
        _store(ctx, runs)
        made.append([(r["status"], r["execution_time"]) for r in runs])
    rows = regressions.version_regressions(ctx, OWNER, flow_id).to_pylist()
    assert len(rows) == 3
    for k, (row, runs) in enumerate(zip(rows, made, strict=True)):
        ms = [float(x) for _, x in runs]
        errors = sum(s == "error" for s, _ in runs)
        assert (row["runs"], row["errors"]) == (len(runs), errors)
        assert _close(row["p50_ms"], _quantile(ms, 0.5)) and _close(row["p95_ms"], _quantile(ms, 0.95))
        if k == 0:
            assert row["previous_version"] is None and row["failure_rate_significant"] is None
            continue
        prev_runs = made[k - 1]
        prev_ms = [float(x) for _, x in prev_runs]
        prev_errors = sum(s == "error" for s, _ in prev_runs)
        assert row["previous_version"] == rows[k - 1]["flow_version"]
        assert _close(row["failure_rate_change"], errors / len(runs) - prev_errors / len(prev_runs))
        assert _close(row["p50_change_ms"], _quantile(ms, 0.5) - _quantile(prev_ms, 0.5))
        assert math.isclose(
            row["duration_p_value"], _mann_whitney_by_pairs(prev_ms, ms), rel_tol=1e-6, abs_tol=1e-12
        )
        if errors + prev_errors:
            assert math.isclose(
                row["failure_rate_p_value"],
                _z_test(prev_errors, len(prev_runs), errors, len(runs)),
                rel_tol=1e-6,
                abs_tol=1e-12,
            )
    v2, v3 = rows[1], rows[2]
    assert v2["enough_runs"] and v2["failure_rate_significant"] and v2["duration_significant"]
    assert v2["failure_rate_z"] > 0 and v2["duration_z"] > 0
    assert not v3["enough_runs"] and not v3["failure_rate_significant"] and not v3["duration_significant"]
    assert v3["duration_p_value"] < 0.05  # clearly different, yet not flagged: too few runs
    # the reader sees only their 5 runs of the first version
    (mine,) = regressions.version_regressions(ctx, READER, flow_id).to_pylist()
    assert mine["runs"] == 5 and mine["flow_version"] == rows[0]["flow_version"]


def test_mann_whitney_and_z_edge_cases() -> None:
    assert regressions.two_proportion_z(0, 40, 0, 40).p_value == 1.0
    assert regressions.two_proportion_z(40, 40, 40, 40).p_value == 1.0
    assert regressions.mann_whitney(1, 1, 1.5, 6.0).p_value == 1.0  # all tied: no variance
    same = regressions.mann_whitney(30, 30, 30 * 61 / 2, 0.0)  # R1 at its mean
    assert same.statistic == 0.0 and same.p_value == 1.0


# -- anomalies ----------------------------------------------------------------------------------


def _expected_anomalies(series: list[tuple[str, float]], window: int, threshold: float) -> dict[str, float]:
    out = {}
    for i, (eid, x) in enumerate(series):
        base = [v for _, v in series[max(0, i - window) : i]]
        if len(base) < anomalies.MIN_BASELINE:
            continue
        med = statistics.median(base)
        mad = statistics.median(abs(v - med) for v in base)
        if mad > 0:
            z = 0.6745 * (x - med) / mad
        else:
            mean_ad = statistics.fmean(abs(v - med) for v in base)
            if mean_ad == 0:
                continue
            z = (x - med) / (1.253314 * mean_ad)
        if abs(z) >= threshold:
            out[eid] = z
    return out


def test_anomalies_match_python(ctx: Context, flow_id: str) -> None:
    rng = random.Random(21)
    runs = []
    for i in range(260):
        ms = rng.randint(900, 1100)
        if i in (40, 41, 150, 222):
            ms = rng.choice([6000, 12000, 50])
        user = "reader" if i % 5 == 0 else "owner"
        runs.append(_run(flow_id, BASE + timedelta(minutes=i), user=user, execution_time=ms))
    ids = _store(ctx, runs)
    series = [
        (eid, float(r["execution_time"]), r["user_id"], r["created_at"])
        for eid, r in zip(ids, runs, strict=True)
    ]
    for viewer, window, threshold in ((OWNER, 100, 3.5), (OWNER, 20, 2.0), (READER, 10, 3.5)):
        mine = [(e, x) for e, x, u, _ in series if viewer is OWNER or u == "reader"]
        want = _expected_anomalies(mine, window, threshold)
        got = anomalies.find_anomalies(
            ctx, viewer, flow_id, window=window, threshold=threshold, limit=1000
        ).to_pylist()
        assert {r["execution_id"] for r in got} == set(want), (viewer, window)
        for r in got:
            assert math.isclose(r["robust_z"], want[r["execution_id"]], rel_tol=1e-9)
        assert [r["created_at"] for r in got] == sorted((r["created_at"] for r in got), reverse=True)
    # a range scores only its runs, with baselines reaching back before it
    start = BASE + timedelta(minutes=150)
    ranged = anomalies.find_anomalies(ctx, OWNER, flow_id, start=start).to_pylist()
    full = _expected_anomalies([(e, x) for e, x, _, _ in series], 100, 3.5)
    in_range = {e for e, _, _, at in series if datetime.fromisoformat(at) >= start}
    assert {r["execution_id"] for r in ranged} == set(full) & in_range
    assert any(r["baseline_runs"] == 100 for r in ranged)


def test_anomalies_when_mad_is_zero(ctx: Context, flow_id: str) -> None:
    # a baseline mostly at exactly 1000 ms: MAD 0, MeanAD from the few others
    values = [1000.0] * 30 + [1200.0, 1000.0, 800.0] + [1000.0] * 10 + [5000.0, 1000.0]
    flat = flows.create_flow(ctx, OWNER, name="flat", nodes=[], edges=[]).id
    ids = _store(
        ctx, [_run(flat, BASE + timedelta(seconds=i), execution_time=int(v)) for i, v in enumerate(values)]
    )
    got = anomalies.find_anomalies(ctx, OWNER, flat, window=20).to_pylist()
    want = _expected_anomalies(list(zip(ids, values, strict=True)), 20, 3.5)
    assert {r["execution_id"] for r in got} == set(want)
    spike = next(r for r in got if r["value"] == 5000.0)
    assert spike["mad"] == 0 and spike["mean_ad"] > 0
    assert math.isclose(spike["robust_z"], want[spike["execution_id"]])
    # a constant baseline has no scale: nothing is scored, not even a spike
    const = flows.create_flow(ctx, OWNER, name="const", nodes=[], edges=[]).id
    _store(
        ctx,
        [
            _run(const, BASE + timedelta(seconds=i), execution_time=1000 if i < 20 else 9000)
            for i in range(21)
        ],
    )
    assert anomalies.find_anomalies(ctx, OWNER, const).num_rows == 0


def test_anomalies_on_cost_skip_unpriced_runs(ctx: Context, flow_id: str) -> None:
    runs = []
    for i in range(40):
        tokens = 100 if i != 35 else 100_000
        nodes = {
            "model_1_a": {
                "modelId": "gpt-4o-mini",
                "usage": {"prompt_tokens": tokens + i % 7, "completion_tokens": 50},
            }
        }
        if i % 4 == 0:
            nodes = {"tool_1_a": {"value": 1}}  # no model: no cost
        runs.append(_run(flow_id, BASE + timedelta(minutes=i), nodes=nodes))
    ids = _store(ctx, runs)
    got = anomalies.find_anomalies(ctx, OWNER, flow_id, metric="cost").to_pylist()
    assert [r["execution_id"] for r in got] == [ids[35]]
    assert got[0]["baseline_runs"] == 26  # runs 0..34 minus the 9 unpriced ones


def test_versions_compare_whole_lives_whatever_the_range(ctx: Context, flow_id: str) -> None:
    """A range that starts after v1's last run still compares v2 with v1, over all their runs;
    the range only chooses which versions are listed (those whose life overlaps it)."""
    rng = random.Random(5)
    made: list[list[tuple[str, int, datetime]]] = []
    t = BASE
    for k, p_err in enumerate((0.03, 0.4, 0.05)):
        if k:
            flows.update_flow(ctx, OWNER, flow_id, {"nodes": [{"id": f"w{k}"}]})
        runs = []
        for _ in range(60):
            t += timedelta(hours=1)
            status = "error" if rng.random() < p_err else "success"
            runs.append((status, rng.randrange(100, 900), t))
        _store(ctx, [_run(flow_id, at, status=s, execution_time=ms) for s, ms, at in runs])
        made.append(runs)
    whole = regressions.version_regressions(ctx, OWNER, flow_id).to_pylist()
    assert [r["runs"] for r in whole] == [60, 60, 60]
    # from the middle of v2's life to the middle of v3's: v1 is not listed, v2 still compared with v1
    start, end = made[1][30][2], made[2][30][2]
    ranged = regressions.version_regressions(ctx, OWNER, flow_id, start=start, end=end).to_pylist()
    assert [r["flow_version"] for r in ranged] == [whole[1]["flow_version"], whole[2]["flow_version"]]
    assert ranged == whole[1:]
    v2 = ranged[0]
    assert v2["previous_version"] == whole[0]["flow_version"] and v2["runs"] == 60
    errors = [sum(s == "error" for s, _, _ in runs) for runs in made]
    assert math.isclose(v2["failure_rate_p_value"], _z_test(errors[0], 60, errors[1], 60), rel_tol=1e-6)
    # a plain flag per version for lists and overviews: true/false, never null
    assert [r["significant"] for r in whole] == [
        False,
        bool(whole[1]["failure_rate_significant"] or whole[1]["duration_significant"]),
        bool(whole[2]["failure_rate_significant"] or whole[2]["duration_significant"]),
    ]
    assert whole[1]["significant"] and whole[1]["regressed"]  # fails more than v1
    assert whole[2]["failure_rate_significant"] and not whole[2]["regressed"]  # fails less than v2
    # a range after every run lists nothing; one inside v1 lists v1 alone, as the first version
    assert regressions.version_regressions(ctx, OWNER, flow_id, start=t + timedelta(days=1)).num_rows == 0
    (first,) = regressions.version_regressions(ctx, OWNER, flow_id, end=made[0][10][2]).to_pylist()
    assert first["previous_version"] is None and first["runs"] == 60
