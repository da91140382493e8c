"""Open WebUI mode vs standalone: list, detail and stats latency over the same store.

One store of runs; one Open WebUI SQLite database (users, groups, flows). The server is started
(uvicorn, `flowhistory serve`) alternately without and with FLOWHISTORY_OPENWEBUI_DB, and each
round times the same sequential requests on a keep-alive connection. The answer is the ratio of
median latencies (Open WebUI mode / standalone) per route; the issue's bound is 1.10.

    PYTHONPATH=$PWD .venv/bin/python -m bench.openwebui_mode [--runs 20000] [--rounds 3] [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from analytics.access.auth import create_token
from bench.servers import serve_cli
from tests.openwebui.webui_db import WebUIDb

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def serve(db: Path, webui: str | None) -> tuple[subprocess.Popen[bytes], str]:
    env = {"WEBUI_SECRET_KEY": SECRET} | ({"FLOWHISTORY_OPENWEBUI_DB": webui} if webui else {})
    return serve_cli(db, env, db.parent / "server.stderr")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def seed(folder: Path, runs: int) -> tuple[Path, str, str, str]:
    """Open WebUI with 1,000 users, 50 groups, 200 flows; `runs` runs of one flow in the store."""
    webui = WebUIDb.sqlite(folder / "webui.db").create_schema()
    webui.add_user("boss", "admin")
    for i in range(1000):
        webui.add_user(f"u{i}", "user", api_key=f"sk-{i:032x}")
    for g in range(50):
        webui.add_group(f"g{g}", [f"u{i}" for i in range(g, 1000, 50)])
    flows = [
        webui.add_flow(f"u{i}", nodes=[{"id": f"model_{i}"}], access_control={"read": {"group_ids": ["g1"]}})
        for i in range(200)
    ]
    webui.close()
    db = folder / "store.duckdb"
    proc, url = serve(db, webui.url)
    try:
        token = create_token(SECRET, "u0")
        headers = {"Authorization": f"Bearer {token}"}
        body = "\n".join(
            f'{{"flow_id": "{flows[0]}", "status": "{"success" if n % 7 else "error"}", "execution_time": {n % 5000},'
            f' "inputs": {{"prompt": "hello {n}"}}, "outputs": {{"text": "answer {n}"}}, "node_results": null}}'
            for n in range(runs)
        )
        r = httpx.post(
            f"{url}/api/v1/executions/batch",
            content=body,
            headers={**headers, "Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        r.raise_for_status()
        run_id = httpx.get(f"{url}/api/v1/flows/{flows[0]}/executions?page=1", headers=headers).json()[0][
            "id"
        ]
    finally:
        stop(proc)
    return db, webui.url, flows[0], run_id


def measure(url: str, flow: str, run: str, requests: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {create_token(SECRET, 'u0')}"}
    paths = {
        "list": f"/api/v1/flows/{flow}/executions?page=1",
        "detail": f"/api/v1/flows/{flow}/executions/{run}",
        "stats": f"/api/v1/flows/{flow}/executions/stats",
    }
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for name, path in paths.items():
            for _ in range(20):  # warm up (and, standalone, the first sight of u0 creates it)
                client.get(path).raise_for_status()
            times = []
            for _ in range(requests):
                t = time.perf_counter()
                client.get(path).raise_for_status()
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times) * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, webui, flow, run = seed(Path(tmp), args.runs)
        results: dict[str, list[dict[str, float]]] = {"standalone": [], "openwebui": []}
        for _ in range(args.rounds):
            for mode in ("standalone", "openwebui"):
                proc, url = serve(db, webui if mode == "openwebui" else None)
                try:
                    results[mode].append(measure(url, flow, run, args.requests))
                finally:
                    stop(proc)
                print(mode, {k: round(v, 3) for k, v in results[mode][-1].items()}, flush=True)
    print(f"\nmedian latency over {args.rounds} alternating rounds of {args.requests} requests, ms")
    print("| route | standalone | Open WebUI mode | ratio |\n|---|---|---|---|")
    for route in ("list", "detail", "stats"):
        a = statistics.median(r[route] for r in results["standalone"])
        b = statistics.median(r[route] for r in results["openwebui"])
        print(f"| {route} | {a:.3f} | {b:.3f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
