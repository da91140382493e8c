"""Dashboard responsiveness: time from navigation to the first rows of a 10,000-run history panel.

A fresh store, served by `flowhistory serve` in its own process on 127.0.0.1, gets one flow with
N runs through the batch API (`POST /api/v1/executions/batch`). Then Debian's Chromium under
Playwright opens the history panel signed in (token preset in localStorage, as after a sign-in)
and we time navigation → the first row of the runs table visible, REPEAT times after a warm-up,
each in a fresh browser context (cold page, warm server). Reported: the median and the range,
both as seen from Python (goto start → row visible) and by the page (`performance.now()` at the
frame after the first row entered the DOM, i.e. since navigation start).

    flock /tmp/flowhistory-bench.lock .venv/bin/python -m bench.dashboard_bench [--runs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.servers import serve_cli

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Records, in the page, when the first row is in the DOM and the next frame has been painted:
# Playwright's own wait polls, so its wall time is a coarser upper bound.
FIRST_ROW_PROBE = """
new MutationObserver((_, obs) => {
  if (document.querySelector('#runs-table tbody tr')) {
    obs.disconnect();
    requestAnimationFrame(() => setTimeout(() => { window.__firstRowPainted = performance.now(); }, 0));
  }
}).observe(document, { childList: true, subtree: true });
"""


def run_body(flow_id: str, i: int, now: datetime) -> dict[str, Any]:
    """A run like the editor's: three nodes, a model with usage; 1 in 8 fails, 1 in 40 aborts."""
    status = "error" if i % 8 == 3 else "aborted" if i % 40 == 7 else "success"
    ms = 300 + (i * 7919) % 4000
    text = f"Answer {i}: " + "lorem ipsum " * 20
    nodes = {
        "input_1": {"value": f"question {i}"},
        "model_1": {
            "modelId": "gpt-4o-mini",
            "content": text,
            "usage": {"prompt_tokens": 80 + i % 50, "completion_tokens": 40 + i % 90},
            "duration_ms": ms - 50,
        },
        "output_1": {"value": text},
    }
    return {
        "flow_id": flow_id,
        "status": status,
        "inputs": {"prompt": f"question {i}", "files": []},
        "outputs": nodes,
        "node_results": nodes,
        "errors": {"model_1": "upstream timeout after 30s"} if status == "error" else None,
        "execution_time": ms,
        "created_at": (now - timedelta(seconds=60 * i)).isoformat(),
    }


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "WEBUI_SECRET_KEY": "dashboard-bench-secret-0123456789abcdef",
        "FLOWHISTORY_SCHEDULER_ENABLED": "false",  # no background jobs while we time
    }
    return serve_cli(folder / "store.duckdb", env, folder / "server.stderr")


def seed(url: str, key: str, runs: int) -> str:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        flow = http.post("/api/v1/flows/create", json={"name": "busy", "nodes": [], "edges": []}).json()
        now = datetime.now(UTC)
        for start in range(0, runs, 2000):
            body = [run_body(flow["id"], i, now) for i in range(start, min(runs, start + 2000))]
            result = http.post("/api/v1/executions/batch", json=body).json()
            assert result["refused"] == 0, result
        total = http.get(f"/api/v1/flows/{flow['id']}/executions/stats").json()["total_executions"]
        assert total == runs, total
        return str(flow["id"])


def measure(url: str, key: str, flow_id: str, runs: int, repeat: int) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    page_ms: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for i in range(repeat + 1):  # the first is a warm-up (server caches, Chromium's start)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
            context.add_init_script(f"localStorage.setItem('flowhistory.token', {key!r})")
            context.add_init_script(FIRST_ROW_PROBE)
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(f"/#/flows/{flow_id}", wait_until="commit")
            page.locator("#runs-table tbody tr").first.wait_for(state="visible", timeout=30_000)
            t1 = time.perf_counter()
            seen = float(page.evaluate("window.__firstRowPainted || performance.now()"))
            shown = page.locator("#runs-summary").inner_text()
            assert shown == f"Showing 50 of {runs:,} runs", shown
            if i:
                wall.append((t1 - t0) * 1000)
                page_ms.append(seen)
            if i == repeat and os.environ.get("BENCH_WATERFALL"):
                entries = page.evaluate(
                    "performance.getEntriesByType('resource').map(e => [e.name, e.startTime, e.responseEnd])"
                )
                for name, start, end in entries:
                    print(f"  {start:7.0f} → {end:7.0f} ms  {name.split('127.0.0.1')[-1][:90]}")
            context.close()
        browser.close()
    return wall, page_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fh-dash-bench-") as tmp:
        folder = Path(tmp)
        proc, url = start_server(folder)
        try:
            key = (folder / "admin_api_key").read_text().strip()
            t = time.perf_counter()
            flow_id = seed(url, key, args.runs)
            print(f"seeded {args.runs} runs in {time.perf_counter() - t:.1f} s", flush=True)
            wall, page_ms = measure(url, key, flow_id, args.runs, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"history panel, {args.runs} runs, first rows visible ({args.repeat} runs after a warm-up):")
    print(
        f"  from Python (goto → row visible): median {statistics.median(wall):.0f} ms, "
        f"min {min(wall):.0f}, max {max(wall):.0f}"
    )
    print(
        f"  in the page (first row painted):   median {statistics.median(page_ms):.0f} ms, "
        f"min {min(page_ms):.0f}, max {max(page_ms):.0f}"
    )


if __name__ == "__main__":
    main()
