"""The flowhistory app of another checkout, for A/B runs of one harness against two versions:
`BENCH_CHECKOUT=/path/to/checkout python -m bench.run --fh-app bench.app_at:app`."""

import os
import sys

sys.path.insert(0, os.environ["BENCH_CHECKOUT"])

# imported after the path is set: the other checkout's app, not this one
from api.app import app

__all__ = ["app"]
