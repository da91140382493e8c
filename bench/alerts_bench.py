"""Alerts benchmark: a full evaluation of N rules, and ingest throughput with them active vs none.

Runs on a copy of a store the main harness built (default: the cached 1M-run store under
bench/out/cache), brought to the current schema, with N rules spread over its flows: the five
metrics, windows 15m/1h/1d/7d/30d, some scoped to a node, a model or a flow version, some to
every flow a user owns. Then:

1. full evaluation at the data's end (every window holds runs), `--evals` times after a warm-up;
2. ingest through the library, alternating "alerts off" (no listener) and "alerts on" (N
   rules, the ingest listener and its evaluator thread with the default 1 s debounce), round
   by round: single runs from `--threads` threads, and batches of `--batch` runs.

    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.alerts_bench [--store PATH] [--rules 1000]

`--synthesize N --store PATH` first builds PATH (if missing) with N runs written straight by SQL
(the bench's users and flows, Zipf-like flows, 85/12/3 % statuses, log-normal times, two node
facts per run with a model, 90 days ending at the data's end): loading 10M runs through ingest
takes hours on this machine, and evaluation reads only these typed columns.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from analytics.core.clock import from_epoch_seconds
from bench import generate
from bench.common import OUT

METRICS = ("failure_rate", "error_count", "run_count", "p95_duration", "cost")
WINDOWS = ("15m", "1h", "1d", "7d", "30d")


def default_store() -> Path:
    found = sorted(
        OUT.glob("cache/r1000000-*std*/flowhistory-*/flowhistory.duckdb"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise SystemExit("no cached 1M store: run `make bench` once, or pass --store")
    return found[-1]


def make_rules(ctx: Any, n: int) -> int:
    from analytics.access.permissions import Viewer
    from analytics.alerts import service
    from analytics.alerts.rules import RuleCreate

    admin = Viewer("bench-admin", "admin")
    flows = sorted(ctx.directory.flows(), key=lambda f: f.id)
    nodes = dict(
        ctx.store.read(
            lambda c: c.execute(
                "SELECT flow_id, any_value(node_id) FROM execution_nodes WHERE model IS NOT NULL GROUP BY flow_id"
            ).fetchall()
        )
    )
    models = [
        m
        for (m,) in ctx.store.read(
            lambda c: c.execute(
                "SELECT DISTINCT model FROM execution_nodes WHERE model IS NOT NULL ORDER BY 1"
            ).fetchall()
        )
    ]
    for i in range(n):
        flow = flows[i % len(flows)]
        metric = METRICS[i % len(METRICS)]
        threshold = {
            "failure_rate": 0.3,
            "error_count": 50,
            "run_count": 1000,
            "p95_duration": 20_000,
            "cost": 5,
        }
        body: dict[str, Any] = {
            "name": f"bench-{i}",
            "metric": metric,
            "window": WINDOWS[(i // 5) % len(WINDOWS)],
            "threshold": threshold[metric],
            "flow_id": flow.id,
            "min_runs": 5,
        }
        kind = i % 20
        if kind == 1 and flow.id in nodes:
            body["node_id"] = nodes[flow.id]
        elif kind == 2 and models:
            body["model"] = models[i % len(models)]
        elif kind == 3:
            body["flow_version"] = flow.version
        elif kind == 4:
            body.pop("flow_id")
            body["owned_by"] = flow.owner_id
        service.create_rule(ctx, admin, RuleCreate(**body))
    return n


_SYNTH = """
INSERT INTO executions BY NAME
SELECT uuid() AS id, f.id AS flow_id, 'u' || lpad(((g.i % 100) + 1)::VARCHAR, 3, '0') AS user_id,
       g.status, g.ms AS execution_time,
       ?::TIMESTAMP + to_microseconds((g.i * ?)::BIGINT) AS created_at,
       '{"prompt": "hi"}' AS inputs, NULL AS outputs, true AS outputs_same, '{}' AS node_results,
       NULL AS errors, NULL AS meta, 2 AS node_count, 120 AS tokens_in, 60 AS tokens_out,
       false AS tokens_estimated, g.ms / 1e7 AS cost, f.version AS flow_version, NULL AS replay_of,
       [struct_pack(node_id := 'input_1', node_type := 'input', model := NULL::VARCHAR, status := 'success',
                    duration_ms := 1::BIGINT, tokens_in := NULL::BIGINT, tokens_out := NULL::BIGINT,
                    tokens_estimated := false, cost := NULL::DOUBLE, error := NULL::VARCHAR),
        struct_pack(node_id := 'model_1', node_type := 'model', model := g.model, status := g.status,
                    duration_ms := (g.ms * 0.8)::BIGINT, tokens_in := 120::BIGINT, tokens_out := 60::BIGINT,
                    tokens_estimated := false, cost := g.ms / 1e7,
                    error := CASE WHEN g.status = 'error' THEN 'boom' END)] AS nodes
FROM (
    SELECT i, floor(pow(random(), 3) * 1000)::INT AS fi,
           CASE WHEN r < 0.85 THEN 'success' WHEN r < 0.97 THEN 'error' ELSE 'aborted' END AS status,
           greatest(1, exp(6.5 + sqrt(-2 * ln(greatest(random(), 1e-12))) * cos(2 * pi() * random())))::BIGINT AS ms,
           ['gpt-4o-mini', 'gpt-4o', 'llama3.1:8b', 'mistral:7b'][1 + (i % 4)::INT] AS model
    FROM (SELECT i, random() AS r FROM range(?, ?) t(i))
) g
JOIN (SELECT (row_number() OVER (ORDER BY id) - 1)::INT AS fi, id, version FROM flows) f USING (fi)
"""


def synthesize(db: Path, runs: int, chunk: int = 1_000_000) -> None:
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from bench import fh_load

    fh_load.load(db, [], generate.flows(42), generate.users())
    end = from_epoch_seconds(generate.data_end())
    start = end - timedelta(days=generate.DAYS)
    step_us = generate.DAYS * 86_400_000_000 // runs
    ctx = open_context(Settings(db_path=db, seed_prices=False))
    try:
        for lo in range(0, runs, chunk):
            t = time.perf_counter()
            hi = min(runs, lo + chunk)
            ctx.store.write(lambda c, lo=lo, hi=hi: c.execute(_SYNTH, [start, step_us, lo, hi]).fetchall())
            print(f"synthesized {hi:,} runs ({time.perf_counter() - t:.1f} s for this chunk)", flush=True)
    finally:
        ctx.close()


def full_evaluation(ctx: Any, evals: int) -> dict[str, Any]:
    from analytics.alerts.engine import AlertEngine

    engine = AlertEngine(ctx)
    now = from_epoch_seconds(generate.data_end())
    first = engine.evaluate(now)
    times = []
    for _ in range(evals):
        times.append(engine.evaluate(now)["duration_ms"])
    return {
        "targets": first["targets"],
        "rules": first["rules"],
        "first_ms": first["duration_ms"],
        "median_ms": statistics.median(times),
        "all_ms": times,
    }


def _bodies(n: int, seed: int) -> list[dict[str, Any]]:
    """Other runs of the store's own flows (the harness's POST bodies: another stream)."""
    runs = generate.generate_runs(n, seed=seed, stream=7, start=time.time() - 3600, span=3600)
    return [generate.request_body(r) for r in itertools.islice(runs, n)]


def ingest_single(ctx: Any, bodies: list[dict[str, Any]], threads: int, seconds: float) -> tuple[float, int]:
    from analytics.access.permissions import Viewer
    from analytics.history import ingest

    admin = Viewer("bench-admin", "admin")
    counter = itertools.count()
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        while time.monotonic() < stop:
            body = bodies[next(counter) % len(bodies)]
            ingest.save_execution(ctx, admin, body, flow_id=body["flow_id"])
            done[k] += 1

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return sum(done) / (time.perf_counter() - t), sum(done)


def ingest_batches(ctx: Any, bodies: list[dict[str, Any]], batch: int, seconds: float) -> tuple[float, int]:
    from analytics.access.permissions import Viewer
    from analytics.history import ingest

    admin = Viewer("bench-admin", "admin")
    n, t = 0, time.perf_counter()
    for start in itertools.cycle(range(0, len(bodies) - batch + 1, batch)):
        if time.perf_counter() - t >= seconds:
            break
        results = ingest.save_executions(ctx, admin, bodies[start : start + batch])
        n += sum(r.status == "stored" for r in results)
    return n / (time.perf_counter() - t), n


def http_ingest(
    source: Path, work: Path, rules: int, rounds: int, seconds: float, clients: int, scheduler: bool
) -> dict[str, list[float]]:
    """Single-run POSTs over HTTP (uvicorn, one worker) to two servers on copies of the store:
    one without rules, one with `rules` (ingest trigger on, defaults), alternating. Without
    `scheduler`, neither runs scheduled jobs (other parts' exports and rollups start on their own
    clocks and land in one server's phase or the other's)."""
    from analytics.access.auth import create_token
    from analytics.core.config import Settings
    from analytics.core.context import open_context
    from bench import loadgen
    from bench.servers import HOST, Server

    secret = "alerts-bench-secret-0123456789abcdef"
    servers = []
    for name, n in (("off", 0), ("on", rules)):
        db = work / f"http-{name}.duckdb"
        shutil.copy(source, db)
        ctx = open_context(Settings(db_path=db, seed_prices=False))  # both migrated and checkpointed alike
        try:
            if n:
                make_rules(ctx, n)
        finally:
            ctx.close()
        env = {"FLOWHISTORY_DB_PATH": str(db), "WEBUI_SECRET_KEY": secret}
        if not scheduler:
            env["FLOWHISTORY_SCHEDULER_ENABLED"] = "false"
        servers.append(Server(name, "api.app:app", env, work / f"http-{name}.log"))
    owners = {f["id"]: f["user_id"] for f in generate.flows(42)}
    bodies = _bodies(4000, seed=42)
    requests = [
        loadgen.build_request(
            "POST",
            f"/api/v1/flows/{b['flow_id']}/executions",
            host=HOST,
            token=create_token(secret, owners[b["flow_id"]]),
            body=orjson.dumps(b),
        )
        for b in bodies
    ]
    out: dict[str, list[float]] = {"http off": [], "http on": [], "http off cpu_us": [], "http on cpu_us": []}
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_healthy()
            loadgen.run(loadgen.load(s.addr, requests, clients=clients, count=500))  # warm-up
        for r in range(rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:
                cpu = s.cpu_seconds()
                res = loadgen.run(loadgen.load(s.addr, requests, clients=clients, duration=seconds))
                time.sleep(1.5)  # let a triggered evaluation finish: its CPU is counted
                out[f"http {s.name}"].append(res.ok / res.elapsed)
                out[f"http {s.name} cpu_us"].append((s.cpu_seconds() - cpu) / max(res.ok, 1) * 1e6)
                print(
                    f"round {r + 1} http {s.name}: {res.ok / res.elapsed:,.0f} acked runs/s, "
                    f"failed {res.failed}, server CPU {out[f'http {s.name} cpu_us'][-1]:,.0f} µs/run",
                    flush=True,
                )
    finally:
        for s in servers:
            s.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--store", type=Path, default=None, help="a flowhistory store to copy (default: cached 1M)"
    )
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--evals", type=int, default=5)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--synthesize", type=int, default=0, help="build --store with this many runs first")
    p.add_argument("--http", action="store_true", help="only the HTTP ingest phase (two servers)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--no-scheduler", action="store_true", help="--http: servers run no scheduled jobs")
    a = p.parse_args()
    if a.synthesize:
        if a.store is None:
            raise SystemExit("--synthesize needs --store PATH")
        if not a.store.exists():
            t = time.perf_counter()
            synthesize(a.store, a.synthesize)
            print(f"built {a.store} in {time.perf_counter() - t:.0f} s", flush=True)

    from analytics.alerts.lifecycle import start_alerts, stop_alerts
    from analytics.core.config import Settings
    from analytics.core.context import open_context

    source = a.store or default_store()
    work = Path(tempfile.mkdtemp(prefix="alerts-bench-", dir=OUT))
    db = work / "flowhistory.duckdb"
    if a.http:
        try:
            out = http_ingest(source, work, a.rules, a.rounds, a.seconds, a.clients, not a.no_scheduler)
            print("HTTP single-run POSTs (median of rounds):")
            for k, v in out.items():
                print(f"  {k}: {statistics.median(v):,.0f}  (rounds: {', '.join(f'{x:,.0f}' for x in v)})")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        t = time.perf_counter()
        shutil.copy(source, db)
        print(
            f"copied {source} ({source.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        ctx = open_context(Settings(db_path=db, seed_prices=False))
        try:
            runs = ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()[0][0])
            print(f"store: {runs:,} runs, {len(ctx.directory.flows())} flows", flush=True)
            t = time.perf_counter()
            make_rules(ctx, a.rules)
            print(f"created {a.rules} rules in {time.perf_counter() - t:.1f} s", flush=True)
            ev = full_evaluation(ctx, a.evals)
            print(f"full evaluation: {ev}", flush=True)
            bodies = _bodies(max(20_000, a.batch * 4), seed=42)
            results: dict[str, list[float]] = {
                "single off": [],
                "single on": [],
                "batch off": [],
                "batch on": [],
            }
            # process CPU (all threads: ingest, writer, alert evaluation) per run stored: what the
            # alerts cost, less sensitive than throughput to other work on a shared machine
            cpu_us: dict[str, list[float]] = {k: [] for k in results}
            triggers = []
            for r in range(a.rounds):
                for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    alerts = start_alerts(ctx) if mode == "on" else None
                    try:
                        for kind in ("single", "batch"):
                            cpu = time.process_time()
                            if kind == "single":
                                rate, n = ingest_single(ctx, bodies, a.threads, a.seconds)
                            else:
                                rate, n = ingest_batches(ctx, bodies, a.batch, a.seconds)
                            if alerts is not None:  # the evaluation those runs triggered counts too
                                alerts.engine.wait_trigger_idle(60)
                            results[f"{kind} {mode}"].append(rate)
                            cpu_us[f"{kind} {mode}"].append((time.process_time() - cpu) / max(n, 1) * 1e6)
                        if alerts is not None:
                            triggers.append(
                                (alerts.engine.trigger_evaluations, round(alerts.engine.trigger_ms))
                            )
                    finally:
                        stop_alerts(ctx)
                    print(
                        f"round {r + 1} {mode}: "
                        + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items() if k.endswith(mode)),
                        flush=True,
                    )
            print("ingest runs/s (median of rounds):")
            for k, v in results.items():
                print(f"  {k}: {statistics.median(v):,.0f}  (rounds: {', '.join(f'{x:,.0f}' for x in v)})")
            print("process CPU per run stored, µs (median of rounds):")
            for k, v in cpu_us.items():
                print(f"  {k}: {statistics.median(v):,.0f}  (rounds: {', '.join(f'{x:,.0f}' for x in v)})")
            print(f"ingest-triggered evaluations per 'on' phase (count, total ms): {triggers}")
        finally:
            ctx.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
