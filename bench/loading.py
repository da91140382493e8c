"""What both store loaders share: runs fed in chunks with a progress line, and the command line.

The stores differ in how a chunk is written (flowhistory's ingest, SQLAlchemy Core on the
baseline's tables); how runs are cut into chunks, reported and asked for on the command line is
this module's, so the two loads stay comparable.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CHUNK = 20_000

Loader = Callable[..., int]


def load_chunks(
    runs: Iterable[dict[str, Any]],
    write: Callable[[list[dict[str, Any]]], None],
    *,
    label: str,
    progress: bool,
) -> int:
    """Hand `write` the runs CHUNK at a time; the number of runs written."""
    n = 0
    t = time.perf_counter()
    it = iter(runs)
    while chunk := list(itertools.islice(it, CHUNK)):
        write(chunk)
        n += len(chunk)
        if progress and n % (CHUNK * 10) == 0:
            print(f"{label} load: {n:,} runs ({n / (time.perf_counter() - t):,.0f}/s)", flush=True)
    return n


def main(doc: str | None, load: Loader, users: Iterable[Any], label: str) -> None:
    """`--db --runs --seed [--small]`: load the seeded data into a new store at `--db`."""
    from bench import generate

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True, type=Path)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--small", action="store_true")
    a = p.parse_args()
    t = time.perf_counter()
    n = load(
        a.db,
        generate.generate_runs(a.runs, seed=a.seed, small=a.small),
        generate.flows(a.seed, a.small),
        users,
        progress=True,
    )
    print(f"{label} load: {n:,} runs into {a.db} in {time.perf_counter() - t:.1f} s", flush=True)
