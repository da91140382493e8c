"""The stores the benchmark reads: built once per parameters, cached, copied fresh per run.

Both are loaded by subprocesses at once (one per store, so both cores work), each regenerating
the same seeded runs. A cache directory is keyed by the data parameters and a fingerprint of
the code that decides what is stored (the baseline's models; flowhistory's migrations and
ingest), so a change to either rebuilds only the store it affects.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import generate
from bench.common import OUT, PY, ROOT, log


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha1()
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def _data_fingerprint(runs: int, seed: int, small: bool) -> str:
    """The data itself (flows and the first runs), so cosmetic edits to the generator keep
    the cache and real changes do not."""
    h = hashlib.sha1(orjson.dumps(generate.flows(seed, small)))
    for run in itertools.islice(generate.generate_runs(runs, seed=seed, small=small), 2000):
        h.update(orjson.dumps(run))
    return h.hexdigest()[:10]


def cache_dirs(runs: int, seed: int, small: bool) -> tuple[Path, Path]:
    kind = "small" if small else "std"
    key = f"r{runs}-s{seed}-{kind}-e{int(generate.data_end())}-{_data_fingerprint(runs, seed, small)}"
    base = OUT / "cache" / key
    b = ROOT / "bench" / "baseline"
    b_fp = _fingerprint([b / "db.py", b / "models.py", b / "load.py"])
    return base / f"baseline-{b_fp}", base / f"flowhistory-{_store_fingerprint()}"


# Bump when ingest stores the same runs differently (columns computed, payload encoding): the
# cached store is then rebuilt. Later migrations (alerts, retention, exports ...) add tables
# only; the servers apply them to their work copy at start, so they keep the cache.
STORE_FORMAT = 1
DATA_MIGRATIONS = 3  # v0001-v0003 shape the stored runs


def _store_fingerprint() -> str:
    from analytics.core.migrations import all_migrations

    h = hashlib.sha1(f"format {STORE_FORMAT}".encode())
    for m in all_migrations():
        if m.version <= DATA_MIGRATIONS:
            h.update(" ".join(" ".join(m.upgrade).split()).encode())
    return h.hexdigest()[:10]


def store_files(path: Path) -> list[Path]:
    """The database file and its companions (-wal/-shm for SQLite, .wal for DuckDB)."""
    return [q for q in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.wal")) if q.exists()]


def store_bytes(path: Path) -> int:
    return sum(q.stat().st_size for q in store_files(path))


def ensure_stores(runs: int, seed: int, small: bool, *, rebuild: bool = False) -> dict[str, Any]:
    """Build whichever cached store is missing, both at once (one subprocess each)."""
    b_dir, f_dir = cache_dirs(runs, seed, small)
    jobs = []
    for name, d, module, fname in (
        ("baseline", b_dir, "bench.baseline.load", "baseline.sqlite"),
        ("flowhistory", f_dir, "bench.fh_load", "flowhistory.duckdb"),
    ):
        if rebuild and d.exists():
            shutil.rmtree(d)
        if (d / "meta.json").exists():
            continue
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [PY, "-m", module, "--db", str(tmp / fname), "--runs", str(runs), "--seed", str(seed)]
        if small:
            cmd.append("--small")
        logf = open(tmp / "load.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        jobs.append((name, d, tmp, fname, proc, logf, time.perf_counter()))
        log(f"loading {runs:,} runs into the {name} store (pid {proc.pid}, log {tmp / 'load.log'})")
    limit = time.perf_counter() + max(1800, runs / 1000 * 3)  # bounded: ~3 s per 1k runs at worst
    last_report = time.perf_counter()
    finished: dict[str, float] = {}
    try:
        while any(j[4].poll() is None for j in jobs):
            for job in jobs:
                if job[4].poll() is not None and job[0] not in finished:
                    finished[job[0]] = time.perf_counter()
            time.sleep(1)
            if time.perf_counter() > limit:
                raise RuntimeError("loading the stores took too long")
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                for name, _, tmp, *_ in jobs:
                    lines = (tmp / "load.log").read_text().strip().splitlines()
                    log(f"  {name}: {lines[-1] if lines else 'starting'}")
    finally:
        for _, _, _, _, proc, logf, _ in jobs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            logf.close()
    for name, d, tmp, fname, proc, _, t0 in jobs:
        if proc.returncode != 0:
            raise RuntimeError(f"{name} load failed:\n{(tmp / 'load.log').read_text()[-3000:]}")
        seconds = finished.get(name, time.perf_counter()) - t0
        meta = {
            "runs": runs,
            "seed": seed,
            "small": small,
            "file": fname,
            "load_seconds": seconds,
            "bytes": store_bytes(tmp / fname),
            "built_at": datetime.now(UTC).isoformat(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if d.exists():
            shutil.rmtree(d)
        tmp.rename(d)
        for old in d.parent.glob(f"{name}-*"):  # stale builds of this store: gigabytes at 1M
            if old != d and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
        log(f"{name} store built in {seconds:.0f} s: {meta['bytes'] / 1e6:,.0f} MB")
    return {
        "baseline": {"dir": b_dir, **json.loads((b_dir / "meta.json").read_text())},
        "flowhistory": {"dir": f_dir, **json.loads((f_dir / "meta.json").read_text())},
    }


def flowhistory_store(runs: int, seed: int) -> Path:
    """The cached flowhistory store of the standard data, built (both stores) only if missing."""
    store_dir = cache_dirs(runs, seed, False)[1]
    if (store_dir / "meta.json").exists():
        return store_dir
    built: Path = ensure_stores(runs, seed, False)["flowhistory"]["dir"]
    return built


def copy_store(src_dir: Path, fname: str, dst_dir: Path) -> Path:
    for f in store_files(src_dir / fname):
        shutil.copyfile(f, dst_dir / f.name)
    return dst_dir / fname
