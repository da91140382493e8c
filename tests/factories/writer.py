"""Writes made to share one group commit: the writer commits what was queued while it was busy
together, and runs their after-commit hooks after that commit, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from analytics.core.context import Context

WAIT = 30.0  # a safety net for each wait, never what a test asserts


def in_one_commit(ctx: Context, *calls: Callable[[], Any]) -> list[BaseException | None]:
    """Run `calls` (each blocking until its write commits) queued in this order behind a held
    writer, so their writes commit together; answers their exceptions (None: answered)."""
    started, release = threading.Event(), threading.Event()
    held = ctx.store.submit(lambda _: started.set() or release.wait(WAIT))
    assert started.wait(WAIT)  # the writer runs `held`: what is queued now waits for the next commit
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = []
        for n, call in enumerate(calls, start=1):
            futures.append(pool.submit(call))
            deadline = time.monotonic() + WAIT
            while ctx.store.queue_depth() < n and time.monotonic() < deadline:
                assert not futures[-1].done(), futures[-1].exception()  # it must wait to commit
                time.sleep(0.005)  # queued behind `held`, in order
            assert ctx.store.queue_depth() >= n
        release.set()
        held.result()
        return [f.exception(timeout=WAIT) for f in futures]
