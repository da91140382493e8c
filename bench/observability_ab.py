"""Metrics and access logs on vs off, side by side in one run (issue 13 items 6-7).

    python -m bench.observability_ab [--runs 2000] [--seconds 6] [--rounds 2] [--clients 32]
    python -m bench.observability_ab --stored-runs 1000000 --rounds 6   # on copies of bench.run's 1M store

Two flowhistory servers (bench/observed_app.py: the app with `flowhistory serve`'s logging)
on fresh stores filled alike over HTTP (or, with --stored-runs, on two copies of the cached
store bench.run builds, reading its biggest flow as an admin): "off" with FLOWHISTORY_METRICS_ENABLED and
FLOWHISTORY_ACCESS_LOG false, "on" with both (access lines written to its log file, as a
server's stderr would be). Measured alternately round by round (bench.run.alternate): the
history API's list page 1, detail by id, stats, and single-run POSTs from concurrent clients.
Prints and writes bench/out/observability-<time>.md: p50 and per-request server CPU, and on/off.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jwt
import orjson

from analytics.core.clock import file_stamp, utc_now_aware
from bench import generate, loadgen
from bench.common import HOST, OUT, log
from bench.fh_load import ADMIN
from bench.run import alternate, get_json, summarise
from bench.servers import Server
from bench.stores import copy_store, ensure_stores

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
FH_JOBS_OFF = {"FLOWHISTORY_SCHEDULER_ENABLED": "false", "FLOWHISTORY_ALERT_INGEST_TRIGGER": "false"}


def body(flow_id: str, i: int) -> bytes:
    node = {"value": f"answer {i}", "label": "Model", "modelId": "gpt-4o-mini"}
    return orjson.dumps(
        {
            "flow_id": flow_id,
            "status": "success" if i % 7 else "error",
            "inputs": {"prompt": f"q{i}"},
            "outputs": {"model_1": node},
            "node_results": {"model_1": node},
            "errors": None,
            "execution_time": 100 + i % 900,
        }
    )


def fill(server: Server, token: str, runs: int) -> tuple[str, list[str]]:
    create = loadgen.build_request(
        "POST",
        "/api/v1/flows/create",
        host=HOST,
        token=token,
        body=orjson.dumps({"name": "bench", "nodes": [], "edges": []}),
    )
    status, out = loadgen.run(loadgen.fetch(server.addr, create))
    assert status == 200, out
    flow = orjson.loads(out)["id"]
    posts = [
        loadgen.build_request(
            "POST", f"/api/v1/flows/{flow}/executions", host=HOST, token=token, body=body(flow, i)
        )
        for i in range(runs)
    ]
    loadgen.run(loadgen.load(server.addr, posts, clients=8, count=runs))
    status, page = get_json(server, f"/api/v1/flows/{flow}/executions?page=1", token)
    assert status == 200 and page, page
    return flow, [r["id"] for r in page]


def stored(server: Server, token: str, flow: str) -> tuple[str, list[str]]:
    """The biggest flow of a cached bench store, and the run ids of its first pages."""
    ids: list[str] = []
    for page in (1, 2, 3):
        status, runs = get_json(server, f"/api/v1/flows/{flow}/executions?page={page}", token)
        assert status == 200 and runs, runs
        ids += [r["id"] for r in runs]
    return flow, ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2000, help="runs posted into each store first")
    p.add_argument("--read-n", type=int, default=300, help="requests per read operation per server")
    p.add_argument("--seconds", type=float, default=6.0, help="single-run POST seconds per server")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument(
        "--stored-runs", type=int, default=0, help="copies of bench.run's cached store of this size"
    )
    a = p.parse_args(argv)
    token = jwt.encode({"id": ADMIN if a.stored_runs else "bench-user"}, SECRET, algorithm="HS256")
    source = ensure_stores(a.stored_runs, 42, False)["flowhistory"]["dir"] if a.stored_runs else None
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fh-obs-ab-", dir=OUT if a.stored_runs else None))
    servers = []
    for name, on in (("off", "false"), ("on", "true")):
        (work / name).mkdir()
        db = copy_store(source, "flowhistory.duckdb", work / name) if source else work / name / "store.duckdb"
        env = {
            "FLOWHISTORY_DB_PATH": str(db),
            "WEBUI_SECRET_KEY": SECRET,
            "FLOWHISTORY_METRICS_ENABLED": on,
            "FLOWHISTORY_ACCESS_LOG": on,
            **FH_JOBS_OFF,
        }
        servers.append(Server(name, "bench.observed_app:app", env, work / f"{name}.log"))
    rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_healthy()
        big = generate.biggest_flow_id(42, False)
        filled = {s.name: stored(s, token, big) if source else fill(s, token, a.runs) for s in servers}
        rng = random.Random(42)
        ops: dict[str, dict[str, list[bytes]]] = {}
        for s in servers:
            flow, ids = filled[s.name]
            get = lambda path: loadgen.build_request("GET", path, host=HOST, token=token)  # noqa: E731
            ops.setdefault("list page 1", {})[s.name] = [get(f"/api/v1/flows/{flow}/executions?page=1")]
            ops.setdefault("detail", {})[s.name] = [
                get(f"/api/v1/flows/{flow}/executions/{i}") for i in rng.sample(ids, 50)
            ]
            ops.setdefault("stats", {})[s.name] = [get(f"/api/v1/flows/{flow}/executions/stats")]
        for op, reqs in ops.items():
            res = alternate(servers, reqs, rounds=a.rounds, count=a.read_n, seconds=None, warmup=20)
            rows.append((op, summarise(res["off"]), summarise(res["on"])))
            log(f"  {op}: off p50 {rows[-1][1]['p50_ms']:.2f} ms, on p50 {rows[-1][2]['p50_ms']:.2f} ms")
        posts = {}
        for s in servers:
            flow, _ = filled[s.name]
            posts[s.name] = [
                loadgen.build_request(
                    "POST", f"/api/v1/flows/{flow}/executions", host=HOST, token=token, body=body(flow, i)
                )
                for i in range(2000)
            ]
        res = alternate(
            servers,
            posts,
            rounds=a.rounds,
            count=None,
            seconds=a.seconds,
            clients=a.clients,
            warmup=a.clients * 2,
        )
        rows.append((f"single-run POST ({a.clients} clients)", summarise(res["off"]), summarise(res["on"])))
        access_lines = sum(
            1 for ln in (work / "on.log").read_text().splitlines() if "flowhistory.access" in ln
        )
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "| operation | off p50 ms | on p50 ms | p50 on/off | off cpu ms/req | on cpu ms/req | cpu on/off | off req/s | on req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for op, off, on in rows:
        lines.append(
            f"| {op} | {off['p50_ms']:.2f} | {on['p50_ms']:.2f} | {on['p50_ms'] / off['p50_ms']:.2f} | "
            f"{off['server_cpu_ms_per_req']:.3f} | {on['server_cpu_ms_per_req']:.3f} | "
            f"{on['server_cpu_ms_per_req'] / off['server_cpu_ms_per_req']:.2f} | {off['per_s']:,.0f} | {on['per_s']:,.0f} |"
        )
    size = f"copies of the cached {a.stored_runs:,}-run store" if a.stored_runs else f"{a.runs:,} runs posted"
    lines.append(
        f"\naccess lines written by the 'on' server: {access_lines:,}; stores: {size}; rounds: {a.rounds}"
    )
    md = "\n".join(lines)
    print(md)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"observability-{file_stamp(utc_now_aware())}.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
