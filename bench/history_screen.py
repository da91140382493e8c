"""The history screen's queries on one flow of N synthetic runs: facets, filtered stats, a
search page with and without first errors. Mean of 5 after one warm-up, in-process. Run:
    PYTHONPATH=$PWD python -m bench.history_screen 1000000
"""

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from analytics.access.permissions import Viewer
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.flows import registry as flows
from analytics.history import facets, runs, search
from analytics.history.filters import ExecutionFilter

N = int(sys.argv[1])
d = Path(tempfile.mkdtemp())
with open_context(Settings(db_path=d / "s.duckdb", webui_secret_key="x" * 40, port=0)) as ctx:
    f = flows.create_flow(ctx, Viewer("owner"), name="big", nodes=[], edges=[])

    def fill(c: Any) -> None:
        c.execute(
            """INSERT INTO executions (id, flow_id, user_id, status, execution_time, created_at, errors, flow_version, nodes)
        SELECT uuid(), ?, 'u' || (i % 7), CASE WHEN i % 5 = 0 THEN 'error' ELSE 'success' END, i % 5000,
          TIMESTAMP '2026-01-01' + to_microseconds(i * 1000000),
          CASE WHEN i % 5 = 0 THEN '{"model_1": "timeout ' || i || '"}' END, 'v' || (i % 4),
          [{'node_id': 'model_1', 'node_type': 'model', 'model': 'm' || (i % 3), 'status': 'success', 'duration_ms': 5,
            'tokens_in': 1, 'tokens_out': 1, 'tokens_estimated': false, 'cost': 0.0, 'error': NULL},
           {'node_id': 'model_2', 'node_type': 'model', 'model': 'm' || (i % 5), 'status': 'success', 'duration_ms': 5,
            'tokens_in': 1, 'tokens_out': 1, 'tokens_estimated': false, 'cost': 0.0, 'error': NULL}]
        FROM range(?) t(i)""",
            [f.id, N],
        )

    ctx.store.write(fill)
    ctx.counters.reload_flows(ctx.store, [f.id])
    owner = Viewer("owner")
    for name, fn in [
        ("facets", lambda: facets.run_facets(ctx, owner, f.id)),
        ("stats unfiltered", lambda: runs.get_stats(ctx, owner, f.id)),
        (
            "stats status+version",
            lambda: runs.get_stats(
                ctx,
                owner,
                f.id,
                ExecutionFilter.model_validate(
                    {"status": {"any_": ["error"]}, "flow_version": {"any_": ["v1"]}}
                ),
            ),
        ),
        (
            "stats model",
            lambda: runs.get_stats(
                ctx, owner, f.id, ExecutionFilter.model_validate({"model": {"any_": ["m1"]}})
            ),
        ),
        (
            "search 50",
            lambda: search.search_executions(
                ctx, owner, filter=ExecutionFilter.model_validate({"flow_id": {"any_": [f.id]}}), limit=50
            ),
        ),
        (
            "search 50 +errors",
            lambda: search.search_executions(
                ctx,
                owner,
                filter=ExecutionFilter.model_validate({"flow_id": {"any_": [f.id]}}),
                limit=50,
                include_errors=True,
            ),
        ),
    ]:
        fn()
        t = time.perf_counter()
        k = 5
        for _ in range(k):
            fn()
        print(f"{name:24s} {(time.perf_counter() - t) / k * 1000:8.1f} ms")
