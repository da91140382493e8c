"""Paths, interpreter and the progress log shared by the harness modules."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
HOST = "127.0.0.1"


def write_results(name: str, res: dict[str, Any], md: str) -> None:
    """`bench/out/<name>.json` (everything measured) and `<name>.md` (the table for BENCHMARKS.md)."""
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    (OUT / f"{name}.md").write_text(md + "\n")


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)
