"""Where each `?page=N` of a flow starts, remembered while the flow does not change.

The contract's list pages by OFFSET, and DuckDB pays for an OFFSET with every row before it
(~15 ms at page 100 of a 100k-run flow), while a keyset query (`(created_at, id) < last`)
stops early (~3 ms). The history panel asks for page 1, then 2, 3 ... so after serving page N
the start of page N+1 is known. A remembered start is valid only for the flow version it
was computed at; every commit that touches the flow bumps the version (counters.py), so a
stale start is never used and the answer is always exactly what OFFSET would give.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from analytics.history.pagination import Position

Key = tuple[str, str | None, int, int]  # flow id, the single user seen (or None), page size, page


class PageBoundaries:
    def __init__(self, capacity: int = 20_000) -> None:
        self._starts: OrderedDict[Key, tuple[int, Position]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: Key, version: int) -> Position | None:
        with self._lock:
            found = self._starts.get(key)
            if found is None or found[0] != version:
                return None
            self._starts.move_to_end(key)
            return found[1]

    def put(self, key: Key, version: int, start: Position) -> None:
        with self._lock:
            self._starts[key] = (version, start)
            self._starts.move_to_end(key)
            while len(self._starts) > self._capacity:
                self._starts.popitem(last=False)
