"""A lean HTTP/1.1 load generator for loopback benchmarks: keep-alive connections on asyncio
protocols (uvloop when present), request bytes built once, nothing parsed but the status
line and the length. It shares the machine with the servers it measures, so it must cost as
little as possible per request: ~10-20 µs here, against ~300 µs+ for httpx.

    reqs = [build_request("GET", "/health", host="127.0.0.1:8080")]
    result = run(load(("127.0.0.1", 8080), reqs, clients=32, duration=10))
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

try:  # uvloop ships with uvicorn[standard]
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def build_request(
    method: str,
    path: str,
    *,
    host: str,
    token: str | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + body if body is not None else head


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._parse()

    def _parse(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).decode("latin-1")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if chunked:
            body = bytearray()
            pos = start
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                if len(buf) < eol + 2 + size + 2:
                    return
                body += buf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
                if size == 0:
                    break
            del buf[:pos]
            out = bytes(body)
        else:
            if length < 0:
                length = 0
            if len(buf) < start + length:
                return
            out = bytes(buf[start : start + length])
            del buf[: start + length]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, out))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(addr: tuple[str, int]) -> _Conn:
    _, proto = await asyncio.get_running_loop().create_connection(_Conn, addr[0], addr[1])
    return proto


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few failure descriptions
    units: int = 0  # what `on_ok` counted (e.g. stored runs of a batch), else = ok
    server_cpu: float = 0.0  # CPU seconds the measured server spent (filled in by the harness)
    background_cpu: float = 0.0  # CPU seconds spent by everything else on the machine

    def merge(self, other: LoadResult) -> None:
        self.ok += other.ok
        self.failed += other.failed
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        self.latencies += other.latencies
        self.elapsed += other.elapsed
        self.errors += other.errors[: max(0, 5 - len(self.errors))]
        self.units += other.units
        self.server_cpu += other.server_cpu
        self.background_cpu += other.background_cpu


async def load(
    addr: tuple[str, int],
    requests: Sequence[bytes],
    *,
    clients: int = 1,
    duration: float | None = None,
    count: int | None = None,
    expect: int = 200,
    on_ok: Callable[[bytes], int] | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    """Send `requests` in turn (cycling) from `clients` keep-alive connections until `count`
    requests were started or `duration` seconds passed; per-request timeout `timeout`."""
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    res = LoadResult()
    counter = itertools.count()
    n_req = len(requests)
    conns = [await connect(addr) for _ in range(clients)]
    opened = list(conns)
    t0 = time.perf_counter()
    deadline = t0 + duration if duration is not None else float("inf")
    limit = count if count is not None else 1 << 62
    clock = time.perf_counter

    async def worker(conn: _Conn) -> None:
        while True:
            i = next(counter)
            if i >= limit or clock() >= deadline:
                return
            data = requests[i % n_req]
            start = clock()
            try:
                if conn.closed:
                    conn = await connect(addr)
                    opened.append(conn)
                status, body = await asyncio.wait_for(conn.request(data), timeout)
            except (ConnectionError, TimeoutError, OSError) as exc:
                res.failed += 1
                if len(res.errors) < 5:
                    res.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = await connect(addr)
                opened.append(conn)
                continue
            took = clock() - start
            res.statuses[status] = res.statuses.get(status, 0) + 1
            if status == expect:
                res.ok += 1
                res.latencies.append(took)
                res.units += on_ok(body) if on_ok is not None else 1
            else:
                res.failed += 1
                if len(res.errors) < 5:
                    res.errors.append(f"HTTP {status}: {body[:300]!r}")

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        res.elapsed = time.perf_counter() - t0
        for c in opened:
            c.close()
    return res


async def fetch(addr: tuple[str, int], request: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    """One request on a fresh connection."""
    conn = await connect(addr)
    try:
        return await asyncio.wait_for(conn.request(request), timeout)
    finally:
        conn.close()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    if uvloop is not None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)
