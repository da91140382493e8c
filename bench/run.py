"""flowhistory against the baseline (the peer's pattern), both served by uvicorn on loopback,
in the same run, reported as ratios.

    python -m bench.run                 # 1M runs (~20-40 min the first time, the stores are cached)
    python -m bench.run --quick         # 20k runs, short phases, < 2 min: checks the harness
    python -m bench.run --ten-million   # 10M small (~0.3 KB) runs
    python -m bench.run --runs 200000 --read-n 200 --ingest-seconds 5

Steps: generate the runs once (bench/generate.py, seeded) and load them into a baseline
SQLite file and a flowhistory DuckDB store, in parallel subprocesses, cached under
bench/out/cache/<params>/; copy both fresh into bench/out/work/<time>/; start both servers
(one uvicorn worker each) on free 127.0.0.1 ports; check they answer the same; then measure,
alternating between the two servers round by round so drift on a noisy machine hits both:
sequential reads (list page 1 and page 100 of the biggest flow, detail by id, stats of the
biggest and of a small flow), issue 3's analytics (90-day daily trends of the biggest and a
small flow, the biggest flow's node breakdown, a three-filter search; both servers' answers
compared first), single-run POSTs from 32 keep-alive clients, and flowhistory's
batch endpoint. Reads run before the writes. Results go to bench/out/results-<time>.json and
.md (operation | baseline | flowhistory | ratio | target | met).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson

from analytics.core.clock import file_stamp, from_epoch_seconds, iso_utc, utc_now_aware
from bench import generate, loadgen
from bench.common import HOST, OUT, ROOT, log, write_results
from bench.fh_load import ADMIN
from bench.report import build_rows, markdown
from bench.servers import Server, system_busy_seconds
from bench.stores import copy_store, ensure_stores, store_bytes

BATCH_MAX_BYTES = 24 * 1024 * 1024  # per batch request, as the baseline could take it
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # HS256 wants >= 32 bytes

# -- parameters -------------------------------------------------------------------------


@dataclass
class Params:
    runs: int
    seed: int
    small: bool
    quick: bool
    read_n: int  # sequential requests per operation per server
    read_budget: float  # seconds per operation per server, at most
    rounds: int  # A/B alternations per operation
    warmup: int
    clients: int
    ingest_seconds: float  # per server, split over `rounds`
    post_bodies: int
    batch_size: int
    batch_runs: int
    batch_clients: int
    batch_budget: float
    fh_app: str
    keep_work: bool
    rebuild: bool
    phases: tuple[str, ...]
    mixed_clients: int
    mixed_seconds: float

    @property
    def label(self) -> str:
        return f"{self.runs:,} runs ({'~0.3 KB' if self.small else '~3 KB median'} bodies, seed {self.seed})"


def parse_args(argv: list[str] | None = None) -> Params:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, help="runs in the stores (default 1M; --quick 20k; --ten-million 10M)")
    p.add_argument("--ten-million", action="store_true", help="10M small (~0.3 KB) runs")
    p.add_argument("--quick", action="store_true", help="20k runs and short phases: a harness check")
    p.add_argument("--small", action="store_true", help="~0.3 KB bodies (implied by --ten-million)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--read-n", type=int, help="sequential requests per read operation per server")
    p.add_argument("--read-budget", type=float, help="max seconds per read operation per server")
    p.add_argument("--rounds", type=int, help="A/B alternations per operation")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients for single-run POSTs")
    p.add_argument("--ingest-seconds", type=float, help="single-run POST seconds per server")
    p.add_argument("--batch-size", type=int, default=5000, help="runs per batch request")
    p.add_argument("--batch-runs", type=int, help="runs to send through the batch endpoint")
    p.add_argument("--batch-clients", type=int, default=2)
    p.add_argument("--fh-app", default="api.app:app", help="uvicorn target of the flowhistory app")
    p.add_argument("--keep-work", action="store_true", help="keep the copied stores and server logs")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached stores")
    p.add_argument(
        "--phases",
        default="reads,analytics,mixed,ingest,batch",
        help="comma list of reads, analytics, mixed, ingest, batch, export (issue 4; not in the default)",
    )
    p.add_argument("--mixed-clients", type=int, default=4, help="concurrent clients for the mixed reads")
    a = p.parse_args(argv)
    quick = a.quick
    runs = a.runs or (10_000_000 if a.ten_million else 20_000 if quick else 1_000_000)
    return Params(
        runs=runs,
        seed=a.seed,
        small=a.small or a.ten_million,
        quick=quick,
        read_n=a.read_n or (60 if quick else 300),
        read_budget=a.read_budget or (5.0 if quick else 30.0),
        rounds=a.rounds or (2 if quick else 3),
        warmup=5 if quick else 20,
        clients=a.clients,
        ingest_seconds=a.ingest_seconds or (6.0 if quick else 24.0),
        post_bodies=2_000 if quick else 5_000,
        batch_size=a.batch_size,
        batch_runs=a.batch_runs or (20_000 if quick else 200_000),
        batch_clients=a.batch_clients,
        batch_budget=30.0 if quick else 120.0,
        fh_app=a.fh_app,
        keep_work=a.keep_work,
        rebuild=a.rebuild,
        phases=tuple(x.strip() for x in a.phases.split(",") if x.strip()),
        mixed_clients=a.mixed_clients,
        mixed_seconds=4.0 if quick else 20.0,
    )


# -- measuring --------------------------------------------------------------------------


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, round(q / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[k]


def summarise(res: loadgen.LoadResult) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in res.latencies)
    cpus = os.cpu_count() or 1
    return {
        "server_cpu_ms_per_req": res.server_cpu / res.ok * 1000 if res.ok else float("nan"),
        "server_cpu_ms_per_unit": res.server_cpu / res.units * 1000 if res.units else float("nan"),
        "server_cpu_share": res.server_cpu / (res.elapsed * cpus) if res.elapsed else 0.0,
        "background_cpu_share": res.background_cpu / (res.elapsed * cpus) if res.elapsed else 0.0,
        "n": res.ok,
        "failed": res.failed,
        "statuses": {str(k): v for k, v in res.statuses.items()},
        "errors": res.errors,
        "seconds": round(res.elapsed, 3),
        "per_s": res.ok / res.elapsed if res.elapsed else 0.0,
        "units_per_s": res.units / res.elapsed if res.elapsed else 0.0,
        "units": res.units,
        "p50_ms": pct(ms, 50),
        "p90_ms": pct(ms, 90),
        "p99_ms": pct(ms, 99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
    }


def measured(servers: list[Server], target: Server, coro: Any) -> loadgen.LoadResult:
    """Run one load and account for CPU: the target server's, and everything else's (other
    work on this shared machine: the idle server, other users), excluding this harness."""
    cpu0 = {s.name: s.cpu_seconds() for s in servers}
    busy0, self0 = system_busy_seconds(), time.process_time()
    res: loadgen.LoadResult = loadgen.run(coro)
    busy = system_busy_seconds() - busy0
    mine = time.process_time() - self0
    spent = {s.name: s.cpu_seconds() - cpu0[s.name] for s in servers}
    res.server_cpu = spent[target.name]
    res.background_cpu = max(0.0, busy - mine - spent[target.name])
    return res


def alternate(
    servers: list[Server],
    requests: dict[str, list[bytes]],
    *,
    rounds: int,
    count: int | None,
    seconds: float | None,
    clients: int = 1,
    warmup: int = 0,
) -> dict[str, loadgen.LoadResult]:
    """Measure each server `rounds` times, swapping the order every round; `count` and
    `seconds` are totals per server, split over the rounds."""
    totals = {s.name: loadgen.LoadResult() for s in servers}
    if warmup:
        for s in servers:
            loadgen.run(loadgen.load(s.addr, requests[s.name], clients=clients, count=warmup))
    for r in range(rounds):
        order = servers if r % 2 == 0 else servers[::-1]
        for s in order:
            res = measured(
                servers,
                s,
                loadgen.load(
                    s.addr,
                    requests[s.name],
                    clients=clients,
                    count=None if count is None else max(1, count // rounds),
                    duration=None if seconds is None else seconds / rounds,
                ),
            )
            totals[s.name].merge(res)
    return totals


def sequential(
    p: Params, servers: list[Server], requests: dict[str, list[bytes]], op: str, *, warmup: int = 0
) -> dict[str, Any]:
    """One read operation, one request at a time on each server in turn (reads, analytics);
    logs both servers' latencies side by side."""
    res = alternate(servers, requests, rounds=p.rounds, count=p.read_n, seconds=p.read_budget, warmup=warmup)
    out = {name: summarise(r) for name, r in res.items()}
    b, f = (out[s.name] for s in servers)
    log(
        f"  {op:<14} baseline p50 {b['p50_ms']:8.2f} ms p99 {b['p99_ms']:8.2f} "
        f"cpu {b['server_cpu_ms_per_req']:7.2f} ms (n={b['n']})   flowhistory p50 {f['p50_ms']:8.2f} ms "
        f"p99 {f['p99_ms']:8.2f} cpu {f['server_cpu_ms_per_req']:6.2f} ms (n={f['n']})   "
        f"background cpu {b['background_cpu_share']:.0%}/{f['background_cpu_share']:.0%}"
    )
    return out


def concurrent(
    p: Params,
    servers: list[Server],
    reqs: list[bytes],
    *,
    seconds: float,
    clients: int,
    warmup: int,
    unit: str,
) -> dict[str, Any]:
    """The same requests from `clients` at once for `seconds` per server (mixed, ingest);
    logs each server's throughput, per `unit` (what one request is: a req, a run)."""
    res = alternate(
        servers,
        {s.name: reqs for s in servers},
        rounds=p.rounds,
        count=None,
        seconds=seconds,
        clients=clients,
        warmup=warmup,
    )
    out = {name: summarise(r) for name, r in res.items()}
    for s in servers:
        o = out[s.name]
        log(
            f"  {s.name:<12} {o['per_s']:8,.0f} {unit}/s  p50 {o['p50_ms']:7.2f} ms  p99 {o['p99_ms']:7.2f} ms  "
            f"server cpu {o['server_cpu_ms_per_req']:.2f} ms/{unit}  failed {o['failed']}  "
            f"background cpu {o['background_cpu_share']:.0%}"
        )
    return out


def get_json(server: Server, path: str, token: str) -> tuple[int, Any]:
    status, body = loadgen.run(
        loadgen.fetch(server.addr, loadgen.build_request("GET", path, host=HOST, token=token))
    )
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body.decode(errors="replace")


def consistency(
    servers: list[Server], big: str, small: str, token_of: dict[str, str], ids: list[str]
) -> list[str]:
    """Both servers must answer the same data; differences are reported, not fatal."""
    b, f = servers
    notes: list[str] = []
    for fid in (big, small):
        tok = token_of[fid]
        sb, stats_b = get_json(b, f"/api/v1/flows/{fid}/executions/stats", tok)
        sf, stats_f = get_json(f, f"/api/v1/flows/{fid}/executions/stats", tok)
        if sb != 200 or sf != 200:
            notes.append(f"stats {fid}: HTTP {sb} / {sf}")
            continue
        for k in ("total_executions", "success_count", "error_count", "aborted_count"):
            if stats_b[k] != stats_f[k]:
                notes.append(f"stats {fid} {k}: baseline {stats_b[k]} flowhistory {stats_f[k]}")
        if abs(stats_b["avg_execution_time"] - stats_f["avg_execution_time"]) > 1:
            notes.append(
                f"stats {fid} avg: {stats_b['avg_execution_time']} vs {stats_f['avg_execution_time']}"
            )
        if abs((stats_b["last_execution_at"] or 0) - (stats_f["last_execution_at"] or 0)) > 1:
            notes.append(
                f"stats {fid} last: {stats_b['last_execution_at']} vs {stats_f['last_execution_at']}"
            )
        sb, page_b = get_json(b, f"/api/v1/flows/{fid}/executions?page=1", tok)
        sf, page_f = get_json(f, f"/api/v1/flows/{fid}/executions?page=1", tok)
        if sb != 200 or sf != 200:
            notes.append(f"page 1 {fid}: HTTP {sb} / {sf}")
        elif {r["id"] for r in page_b} != {r["id"] for r in page_f}:
            common = len({r["id"] for r in page_b} & {r["id"] for r in page_f})
            notes.append(f"page 1 {fid}: {common}/{len(page_b)} ids in common (ties on created_at seconds?)")
    for eid in ids[:5]:
        sb, eb = get_json(b, f"/api/v1/flows/{big}/executions/{eid}", token_of[big])
        sf, ef = get_json(f, f"/api/v1/flows/{big}/executions/{eid}", token_of[big])
        if sb != 200 or sf != 200:
            notes.append(f"detail {eid}: HTTP {sb} / {sf}")
            continue
        for k in (
            "id",
            "flow_id",
            "user_id",
            "status",
            "inputs",
            "outputs",
            "node_results",
            "errors",
            "execution_time",
        ):
            if eb.get(k) != ef.get(k):
                notes.append(f"detail {eid} {k} differs")
        if abs(eb["created_at"] - ef["created_at"]) > 1:
            notes.append(f"detail {eid} created_at: {eb['created_at']} vs {ef['created_at']}")
    return notes


def sample_ids(sqlite_path: Path, flow_id: str, n: int, seed: int) -> list[str]:
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM flow_execution WHERE flow_id = ?", [flow_id])]
    finally:
        con.close()
    return random.Random(seed).sample(ids, min(n, len(ids)))


def phase_reads(
    p: Params,
    servers: list[Server],
    big: str,
    small: str,
    token_of: dict[str, str],
    ids: list[str],
    big_runs: int,
) -> dict[str, Any]:
    last_page = max(1, -(-big_runs // 60))
    page_far = min(100, last_page)
    ops = {
        "list_page_1": [f"/api/v1/flows/{big}/executions?page=1"],
        f"list_page_{page_far}": [f"/api/v1/flows/{big}/executions?page={page_far}"],
        "detail": [f"/api/v1/flows/{big}/executions/{eid}" for eid in ids],
        "stats_biggest": [f"/api/v1/flows/{big}/executions/stats"],
        "stats_small": [f"/api/v1/flows/{small}/executions/stats"],
    }
    out: dict[str, Any] = {"page_far": page_far}
    for op, paths in ops.items():
        fid = small if op == "stats_small" else big
        reqs = [loadgen.build_request("GET", path, host=HOST, token=token_of[fid]) for path in paths]
        out[op] = sequential(p, servers, {s.name: reqs for s in servers}, op, warmup=p.warmup)
    return out


# Jobs the baseline has no counterpart of stay off while measuring (an export of the whole
# store every 5 minutes would load the machine); the trend rollups are part of how trends
# are answered, so they are built once at start (timed) and refreshed as in production.
FH_JOBS_OFF = {
    "FLOWHISTORY_EXPORT_INTERVAL_S": "0",
    "FLOWHISTORY_EXPORT_COMPACTION_INTERVAL_S": "0",
    "FLOWHISTORY_RETENTION_INTERVAL_S": "0",
}


def prepare_rollups(server: Server, admin_token: str) -> dict[str, Any]:
    """Run the rollups job now and wait: a copied store has none yet."""
    req = loadgen.build_request("POST", "/api/v1/jobs/rollups/run?wait=true", host=HOST, token=admin_token)
    t = time.perf_counter()
    status, body = loadgen.run(loadgen.fetch(server.addr, req, timeout=1800))
    state = (
        orjson.loads(body)
        if status == 200
        else {"status": status, "body": body[:300].decode(errors="replace")}
    )
    return {"seconds": round(time.perf_counter() - t, 2), "result": state.get("last_result", state)}


ANALYTICS_MIN_MS = 2000  # the search's execution_time filter (ms)


def analytics_requests(
    p: Params, servers: list[Server], big: str, small: str, token_of: dict[str, str], admin_token: str
) -> tuple[dict[str, dict[str, bytes]], dict[str, Any]]:
    """Per operation, the one request each server gets (the same path where the routes match)."""
    end = int(generate.data_end())  # midnight UTC: 90 whole days, the same buckets on both sides
    start = end - 90 * 86400
    after = end - 30 * 86400
    iso = lambda t: iso_utc(from_epoch_seconds(t))  # noqa: E731
    measures = "p50_duration,p95_duration,runs,failure_rate"
    ops: dict[str, dict[str, bytes]] = {}
    for key, fid in (("trend_biggest", big), ("trend_small", small)):
        path = f"/api/v1/flows/{fid}/trend?start={start}&end={end}&bucket=day&measures={measures}"
        req = loadgen.build_request("GET", path, host=HOST, token=token_of[fid])
        ops[key] = {s.name: req for s in servers}
    req = loadgen.build_request("GET", f"/api/v1/flows/{big}/nodes", host=HOST, token=token_of[big])
    ops["nodes_biggest"] = {s.name: req for s in servers}
    for key, fid in (("search_all", None), ("search_biggest", big)):
        fh_filter: dict[str, Any] = {
            "status": {"any_": ["error"]},
            "created_at": {"after_": iso(after), "before_": iso(end)},
            "execution_time": {"ge_": ANALYTICS_MIN_MS},
        }
        b_form: dict[str, Any] = {
            "status": ["error"],
            "created_after": after,
            "created_before": end,
            "min_execution_time": ANALYTICS_MIN_MS,
            "limit": 50,
        }
        if fid is not None:
            fh_filter["flow_id"] = {"any_": [fid]}
            b_form["flow_id"] = fid
        bodies = {"baseline": b_form, "flowhistory": {"filter": fh_filter, "limit": 50}}
        ops[key] = {
            s.name: loadgen.build_request(
                "POST",
                "/api/v1/executions/search",
                host=HOST,
                token=admin_token,
                body=orjson.dumps(bodies[s.name]),
            )
            for s in servers
        }
    if "reads" not in p.phases:  # stats belong to issue 3's list too; measured here if not in reads
        for key, fid in (("stats_biggest", big), ("stats_small", small)):
            req = loadgen.build_request(
                "GET", f"/api/v1/flows/{fid}/executions/stats", host=HOST, token=token_of[fid]
            )
            ops[key] = {s.name: req for s in servers}
    params = {
        "trend_start": start,
        "trend_end": end,
        "search_after": after,
        "search_before": end,
        "search_min_ms": ANALYTICS_MIN_MS,
    }
    return ops, params


def _fetch(server: Server, request: bytes) -> tuple[int, Any]:
    status, body = loadgen.run(loadgen.fetch(server.addr, request, timeout=300))
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body.decode(errors="replace")


def analytics_consistency(
    servers: list[Server], ops: dict[str, dict[str, bytes]]
) -> tuple[list[str], list[str]]:
    """Both servers' answers compared before measuring: (differences, what was checked)."""
    b, f = servers
    notes: list[str] = []
    checked: list[str] = []
    for key in ("trend_biggest", "trend_small"):
        sb, tb = _fetch(b, ops[key]["baseline"])
        sf, tf = _fetch(f, ops[key]["flowhistory"])
        if sb != 200 or sf != 200:
            notes.append(f"{key}: HTTP {sb} / {sf}")
            continue
        rb = {r["bucket"]: r for r in tb["rows"]}
        rf = {r["bucket"]: r for r in tf["rows"]}
        if rb.keys() != rf.keys():
            notes.append(f"{key}: days differ ({len(rb)} baseline, {len(rf)} flowhistory)")
        worst = {"p50_duration": 0.0, "p95_duration": 0.0, "failure_rate": 0.0}
        bad_runs = 0
        for day in rb.keys() & rf.keys():
            bad_runs += rb[day]["runs"] != rf[day]["runs"]
            for m in worst:
                if rf[day][m] is None:  # an empty day is a gap in flowhistory, zeros in the peer's
                    worst[m] = worst[m] if rb[day]["runs"] == 0 == rf[day]["runs"] else float("inf")
                    continue
                worst[m] = max(worst[m], abs(rb[day][m] - rf[day][m]))
        if bad_runs:
            notes.append(f"{key}: daily run counts differ on {bad_runs} days")
        if worst["p50_duration"] > 1e-6 or worst["p95_duration"] > 1e-6 or worst["failure_rate"] > 1e-9:
            notes.append(f"{key}: max |difference| {worst}")
        runs = sum(r["runs"] for r in rb.values())
        checked.append(
            f"{key}: {len(rf)} days, {runs:,} runs; daily runs {'equal' if not bad_runs else 'DIFFER'}, "
            f"max |Δp50| {worst['p50_duration']:.2g} ms, |Δp95| {worst['p95_duration']:.2g} ms, "
            f"|Δfailure rate| {worst['failure_rate']:.2g}"
        )
    sb, nb = _fetch(b, ops["nodes_biggest"]["baseline"])
    sf, nf = _fetch(f, ops["nodes_biggest"]["flowhistory"])
    if sb != 200 or sf != 200:
        notes.append(f"nodes_biggest: HTTP {sb} / {sf}")
    else:
        fh_nodes: dict[str, dict[str, int]] = {}
        for r in nf:  # flowhistory splits a node by (node_type, model): summed back per node id
            acc = fh_nodes.setdefault(r["node_id"], {"runs": 0, "errors": 0, "timed_runs": 0})
            for k in acc:
                acc[k] += r[k]
        b_nodes = {r["node_id"]: {k: r[k] for k in ("runs", "errors", "timed_runs")} for r in nb}
        if fh_nodes != b_nodes:
            diff = sorted(k for k in fh_nodes.keys() | b_nodes.keys() if fh_nodes.get(k) != b_nodes.get(k))
            notes.append(f"nodes_biggest: {len(diff)} of {len(b_nodes)} nodes differ, e.g. {diff[:3]}")
        checked.append(
            f"nodes_biggest: {len(b_nodes)} nodes, runs/errors/timed runs per node "
            f"{'equal' if fh_nodes == b_nodes else 'DIFFER'}"
        )
    for key in ("search_all", "search_biggest"):
        sb, pb = _fetch(b, ops[key]["baseline"])
        sf, pf = _fetch(f, ops[key]["flowhistory"])
        if sb != 200 or sf != 200:
            notes.append(f"{key}: HTTP {sb} / {sf}")
            continue
        ib, i_f = [r["id"] for r in pb["items"]], [r["id"] for r in pf["items"]]
        if pb["total"] != pf["total"]:
            notes.append(f"{key}: total baseline {pb['total']} flowhistory {pf['total']}")
        common = len(set(ib) & set(i_f))
        if common != len(ib) or len(ib) != len(i_f):  # created_at: seconds in SQLite, µs in DuckDB
            notes.append(f"{key}: {common}/{len(ib)} ids in common on page 1 (ties on created_at seconds?)")
        checked.append(
            f"{key}: total {pf['total']:,} (baseline {pb['total']:,}), page 1 {common}/{len(i_f)} ids in common"
        )
    return notes, checked


def phase_analytics(
    p: Params,
    servers: list[Server],
    big: str,
    small: str,
    token_of: dict[str, str],
    admin_token: str,
) -> dict[str, Any]:
    """Issue 3's reads: 90-day daily trends, the node breakdown, a three-filter search (and
    stats when the reads phase is not run). Sequential requests as in the reads phase, with the
    warm-up bounded too (a third of the budget): the baseline's slow operations get fewer runs."""
    ops, params = analytics_requests(p, servers, big, small, token_of, admin_token)
    notes, checked = analytics_consistency(servers, ops)
    for line in checked:
        log(f"  check {line}")
    for note in notes:
        log(f"  consistency: {note}")
    out: dict[str, Any] = {"params": params, "checks": checked, "consistency": notes}
    for op, reqs in ops.items():
        for s in servers:  # warm-up: up to p.warmup requests, at most a third of the budget
            loadgen.run(
                loadgen.load(s.addr, [reqs[s.name]], count=p.warmup, duration=p.read_budget / 3, timeout=300)
            )
        out[op] = sequential(p, servers, {s.name: [reqs[s.name]] for s in servers}, op)
    return out


def phase_mixed(
    p: Params, servers: list[Server], big: str, small: str, token_of: dict[str, str], ids: list[str]
) -> dict[str, Any]:
    """What many open history panels do at once: page 1, stats and a detail, interleaved."""
    reqs = []
    for eid in ids[:100]:
        reqs.append(
            loadgen.build_request(
                "GET", f"/api/v1/flows/{big}/executions?page=1", host=HOST, token=token_of[big]
            )
        )
        reqs.append(
            loadgen.build_request(
                "GET", f"/api/v1/flows/{small}/executions/stats", host=HOST, token=token_of[small]
            )
        )
        reqs.append(
            loadgen.build_request(
                "GET", f"/api/v1/flows/{big}/executions/{eid}", host=HOST, token=token_of[big]
            )
        )
    return concurrent(
        p,
        servers,
        reqs,
        seconds=p.mixed_seconds,
        clients=p.mixed_clients,
        warmup=p.mixed_clients * 3,
        unit="req",
    )


def post_requests(p: Params, token_of: dict[str, str]) -> list[bytes]:
    """Single-run POST bodies, spread over the flows as the data is, each with its owner's token."""
    reqs = []
    for run in generate.generate_runs(p.post_bodies, seed=p.seed, stream=1, small=p.small):
        body = orjson.dumps(generate.request_body(run))
        fid = run["flow_id"]
        reqs.append(
            loadgen.build_request(
                "POST", f"/api/v1/flows/{fid}/executions", host=HOST, token=token_of[fid], body=body
            )
        )
    random.Random(p.seed).shuffle(reqs)
    return reqs


def phase_ingest(p: Params, servers: list[Server], token_of: dict[str, str]) -> dict[str, Any]:
    reqs = post_requests(p, token_of)
    sizes = sorted(len(r) for r in reqs)
    log(
        f"  {len(reqs):,} distinct POST requests, median {sizes[len(sizes) // 2]:,} bytes; "
        f"{p.clients} clients, {p.ingest_seconds:.0f} s per server in {p.rounds} rounds"
    )
    return concurrent(
        p, servers, reqs, seconds=p.ingest_seconds, clients=p.clients, warmup=p.clients * 2, unit="run"
    )


def phase_batch(p: Params, servers: list[Server], admin_token: str) -> dict[str, Any]:
    fh = servers[1]
    distinct = max(1, min(8, p.batch_runs // p.batch_size))
    runs = generate.generate_runs(distinct * p.batch_size, seed=p.seed, stream=2, small=p.small)
    bodies: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for run in runs:  # at most batch_size runs and BATCH_MAX_BYTES (the request size the bench keeps to)
        item = orjson.dumps(generate.request_body(run, keep=("created_at", "user_id")))
        if batch and (len(batch) == p.batch_size or size + len(item) > BATCH_MAX_BYTES):
            bodies.append(b"[" + b",".join(batch) + b"]")
            batch, size = [], 0
        batch.append(item)
        size += len(item) + 1
    if batch:
        bodies.append(b"[" + b",".join(batch) + b"]")
    per_request = distinct * p.batch_size / len(bodies)
    reqs = [
        loadgen.build_request("POST", "/api/v1/executions/batch", host=HOST, token=admin_token, body=b)
        for b in bodies
    ]
    n_requests = max(1, round(p.batch_runs / per_request))
    log(
        f"  {n_requests} requests of ~{per_request:,.0f} runs ({len(bodies)} distinct bodies, "
        f"median {sorted(map(len, bodies))[len(bodies) // 2] / 1e6:.1f} MB), {p.batch_clients} clients"
    )
    refused = [0]

    def stored(body: bytes) -> int:
        doc = orjson.loads(body)
        refused[0] += int(doc.get("refused", 0))
        return int(doc.get("stored", 0))

    loadgen.run(loadgen.load(fh.addr, reqs[:1], count=1, on_ok=stored, timeout=300))  # warm-up
    refused[0] = 0
    res = measured(
        servers,
        fh,
        loadgen.load(
            fh.addr,
            reqs,
            clients=p.batch_clients,
            count=n_requests,
            duration=p.batch_budget,
            on_ok=stored,
            timeout=300,
        ),
    )
    out = summarise(res)
    out["refused"] = refused[0]
    out["batch_size"] = round(per_request)
    log(
        f"  flowhistory batch: {out['units_per_s']:,.0f} runs/s ({out['units']:,} stored, {refused[0]} refused, "
        f"{out['n']} requests, p50 {out['p50_ms']:.0f} ms, server cpu {out['server_cpu_ms_per_unit']:.3f} ms/run, "
        f"background cpu {out['background_cpu_share']:.0%})"
    )
    return out


# -- main -------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("duckdb", "sqlalchemy", "fastapi", "uvicorn", "pydantic", "orjson", "pyarrow"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    with contextlib.suppress(Exception):
        out["git"] = git_describe()
    return out


def git_describe() -> str:
    """HEAD, and "-dirty" when the tree has uncommitted changes (the servers run the tree)."""
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return "unknown"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = parse_args(argv)
    t_start = time.perf_counter()
    stamp = file_stamp()
    res: dict[str, Any] = {
        "started_at": utc_now_aware().isoformat(),
        "params": {**{k: v for k, v in vars(p).items()}, "label": p.label},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "versions": versions()},
    }
    log(f"bench: {p.label}{' (quick)' if p.quick else ''}")
    stores = ensure_stores(p.runs, p.seed, p.small, rebuild=p.rebuild)
    res["load"] = {k: {kk: vv for kk, vv in v.items() if kk != "dir"} for k, v in stores.items()}
    res["store_bytes_after_load"] = {k: v["bytes"] for k, v in stores.items()}

    work = OUT / "work" / stamp
    work.mkdir(parents=True)
    signal.signal(signal.SIGTERM, _interrupt)  # servers are stopped in `finally` on kill too
    servers: list[Server] = []
    try:
        t = time.perf_counter()
        b_db = copy_store(stores["baseline"]["dir"], "baseline.sqlite", work)
        f_db = copy_store(stores["flowhistory"]["dir"], "flowhistory.duckdb", work)
        log(f"copied both stores to {work} in {time.perf_counter() - t:.0f} s")

        seed = p.seed
        big, small = generate.biggest_flow_id(seed, p.small), generate.small_flow_id(seed, p.small)
        owners = {f["id"]: f["user_id"] for f in generate.flows(seed, p.small)}
        tokens = {u: jwt.encode({"id": u}, SECRET, algorithm="HS256") for u in set(owners.values())}
        token_of = {fid: tokens[u] for fid, u in owners.items()}
        admin_token = jwt.encode({"id": ADMIN}, SECRET, algorithm="HS256")
        ids = sample_ids(b_db, big, 500, seed)
        con = sqlite3.connect(f"file:{b_db}?mode=ro", uri=True)
        big_runs = con.execute("SELECT count(*) FROM flow_execution WHERE flow_id = ?", [big]).fetchone()[0]
        con.close()
        res["flows"] = {"biggest": big, "biggest_runs": big_runs, "small": small}

        servers = [
            Server(
                "baseline",
                "bench.baseline.app:app",
                {"BASELINE_DB": str(b_db), "WEBUI_SECRET_KEY": SECRET},
                work / "baseline.log",
            ),
            Server(
                "flowhistory",
                p.fh_app,
                {"FLOWHISTORY_DB_PATH": str(f_db), "WEBUI_SECRET_KEY": SECRET, **FH_JOBS_OFF},
                work / "flowhistory.log",
            ),
        ]
        res["git_at_server_start"] = git_describe()
        for s in servers:
            s.start()
        res["startup_seconds"] = {s.name: round(s.wait_healthy(), 2) for s in servers}
        log(f"both healthy: {res['startup_seconds']}")
        res["rollups"] = prepare_rollups(servers[1], admin_token)
        log(f"flowhistory's trend rollups built: {res['rollups']}")

        res["consistency"] = consistency(servers, big, small, token_of, ids)
        for note in res["consistency"]:
            log(f"  consistency: {note}")
        if not res["consistency"]:
            log("  consistency: both servers answer the same stats, page 1 and details")

        mem: dict[str, Any] = {"after_start": {s.name: s.memory() for s in servers}}
        res["server_memory"] = mem
        if "export" in p.phases:  # in-process on its own store copy (bench/export_bench.py)
            from bench import export_bench

            res["export"] = export_bench.phase_export(stores["flowhistory"]["dir"], work / "export")
        if "reads" in p.phases:
            log(f"reads: biggest flow {big} ({big_runs:,} runs), small flow {small}")
            res["reads"] = phase_reads(p, servers, big, small, token_of, ids, big_runs)
            mem["after_reads"] = {s.name: s.memory() for s in servers}
        if "analytics" in p.phases:
            log("analytics (issue 3): 90-day daily trends, node breakdown, three-filter search")
            res["analytics"] = phase_analytics(p, servers, big, small, token_of, admin_token)
            mem["after_analytics"] = {s.name: s.memory() for s in servers}
        if "mixed" in p.phases:
            log(f"mixed reads, {p.mixed_clients} concurrent clients")
            res["mixed"] = phase_mixed(p, servers, big, small, token_of, ids)
        if "ingest" in p.phases:
            log("single-run POST ingest")
            res["ingest"] = phase_ingest(p, servers, token_of)
            mem["after_ingest"] = {s.name: s.memory() for s in servers}
        if "batch" in p.phases:
            log("batch ingest (flowhistory only: the peer has no batch endpoint)")
            res["batch"] = phase_batch(p, servers, admin_token)
        mem["end"] = {s.name: s.memory() for s in servers}
    finally:
        for s in servers:
            s.stop()
        res["store_bytes_after_run"] = {
            "baseline": store_bytes(work / "baseline.sqlite"),
            "flowhistory": store_bytes(work / "flowhistory.duckdb"),
        }
        if not p.keep_work:  # gigabytes at 1M: never leave a copy behind, even on failure
            shutil.rmtree(work, ignore_errors=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["total_seconds"] = round(time.perf_counter() - t_start, 1)

    rows = build_rows(res)
    res["table"] = [
        dict(zip(["operation", "baseline", "flowhistory", "ratio", "target", "met"], r.cells(), strict=True))
        for r in rows
    ]
    md = markdown(res, rows)
    if "export" in res:
        from bench import export_bench

        md += "\n\n## Export (issue 4)\n\n" + export_bench.markdown(res["export"]) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    write_results(f"results-{stamp}", res, md)
    print()
    print(md)
    log(f"wrote {OUT / f'results-{stamp}.json'} and .md in {res['total_seconds']:.0f} s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
