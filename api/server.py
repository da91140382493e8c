"""The HTTP server: uvicorn with deadlines for slow clients and a cap on connections.

uvicorn calls the app only once a request's headers are complete, and it has no header or
body read timeout, so a client sending headers a byte at a time, or a body at 1 byte/s, held
its connection (and a file descriptor) forever. The protocol here adds both:

- headers: from the moment a connection opens, or a new request on a kept-alive one begins,
  the client has `header_timeout_s` to finish the headers. A request begun and not finished
  gets a 408; a connection that never sent a byte is just closed.
- body: in every window of `body_timeout_s` seconds the client must send at least
  `body_min_rate * body_timeout_s` bytes (at least one), else 408 and the connection closes.
  One rule covers an idle client and a trickling one. Windows where the server itself stopped
  reading (the app has not taken the body yet) do not count against the client.

The cap is uvicorn's `limit_concurrency`: past `max_connections` open connections, requests
answer 503, as JSON with a `detail` and `Retry-After` (uvicorn's own answer is plain text).

A request uvicorn cannot parse (a malformed request line or header, a URL past what httptools
can split) is answered here too, as every other error: JSON with a `detail` (uvicorn's own
answer is plain text), 414 for a URL that is too long.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import resource
import socket
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from analytics.core.config import Settings
from analytics.core.jsonio import dumps
from api.observability.middleware import UNMATCHED, Observe, answered, request_id_of

log = logging.getLogger(__name__)

# file descriptors beyond the connection cap: the store, its WAL, exports, logs, sockets out
_SPARE_FDS = 256


# httptools splits a URL into its parts with 16-bit offsets: a longer one fails to parse
MAX_URL_BYTES = 65_535


def _error_response(status: str, detail: str, rid: str) -> bytes:
    """A whole answer written by the protocol itself (the app never saw the request), with the
    request id its access line carries, as every answer of the app has."""
    body = dumps({"detail": detail})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-request-id: {rid}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


TOO_MANY_CONNECTIONS = "the server has too many open connections (FLOWHISTORY_MAX_CONNECTIONS); try again"
RETRY_AFTER_S = 1  # connections free up as requests finish: soon
_TOO_MANY_BODY = dumps({"detail": TOO_MANY_CONNECTIONS})


async def _too_many_connections(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """uvicorn's answer past `limit_concurrency` (its flow_control.service_unavailable: a plain
    text "Service Unavailable"), as every other error: JSON with a `detail`."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TOO_MANY_BODY)).encode("ascii")),
                (b"retry-after", str(RETRY_AFTER_S).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TOO_MANY_BODY, "more_body": False})


# uvicorn's httptools protocol picks that answer by its module-level name when the cap is reached,
# inside on_headers_complete, with no hook a subclass could override in every uvicorn >= 0.30 (it
# imports the name from flow_control without re-exporting it: hence the ignore)
httptools_impl.service_unavailable = _too_many_connections  # type: ignore[attr-defined]


class _UrlTooLong(Exception):
    """Raised in the parser's URL callback: httptools stops, and uvicorn calls send_400_response."""


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a minimum body rate."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    body_min_rate: int = 0
    observe: Observe | None = None  # the app's metrics, for the answers written here

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._request_begun = False
        self._url_seen = False  # the request line got past its method (else get_method() says DELETE)
        self._window_bytes = 0
        self._url_too_long = False
        self._unparsable_answer: bytes | None = None  # waits for the answers to requests before it
        self._began: float | None = None  # when the request being read began: its access line's time

    # -- requests uvicorn cannot parse -------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url_seen = True
        if len(self.url) + len(url) > MAX_URL_BYTES:
            self._url_too_long = True
            raise _UrlTooLong
        super().on_url(url)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what it cannot parse (`msg`: "Invalid HTTP request received."), as JSON."""
        if self._url_too_long:
            status, detail = "414 URI Too Long", f"the request's URL is longer than {MAX_URL_BYTES} bytes"
        else:
            status, detail = (
                "400 Bad Request",
                f"{msg.rstrip('.')}: its request line or headers are not HTTP/1.1",
            )
        cycle = self.cycle
        rid = self._request_id()
        answer = _error_response(status, detail, rid)
        if cycle is None or cycle.response_complete or not cycle.more_body:  # else the app has it (its 499)
            self._answered(int(status[:3]), rid)
        if self.pipeline or (cycle is not None and not cycle.more_body and not cycle.response_complete):
            # whole requests parsed before it from the same bytes are answered first: a pipelining
            # client matches answers to requests in order, and took this one for the first's (a
            # request whose own body is malformed is answered now: the app never gets its body)
            self._unparsable_answer = self._unparsable_answer or answer
            return
        self.transport.write(answer)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        done = not self.pipeline and (cycle is None or cycle.response_complete)
        if self._unparsable_answer is not None and done and not self.transport.is_closing():
            self.transport.write(self._unparsable_answer)
            self.transport.close()

    # -- headers -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = time.perf_counter()
        self._request_begun = True
        self._url_seen = False
        self._arm_header_timer()  # a new request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = None
        self._request_begun = False
        super().on_headers_complete()
        self._window_bytes = 0
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._check_body)

    def _arm_header_timer(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            self._refuse(f"the request headers did not arrive within {self.header_timeout_s:g} s")
        else:
            self.transport.close()  # an idle connection: nothing to answer

    # -- body --------------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._window_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    def _check_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        needed = max(1, int(self.body_min_rate * self.body_timeout_s))
        if self._window_bytes < needed and not self.flow.read_paused:
            self._refuse(f"the request body arrived slower than {needed} bytes in {self.body_timeout_s:g} s")
            return
        self._window_bytes = 0
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._check_body)

    # -- both --------------------------------------------------------------------------------

    def _refuse(self, detail: str) -> None:
        """408 unless the app already started its answer, then close; the app's next receive()
        says the client is gone."""
        log.warning("closing a slow client %s: %s", self.client, detail)
        cycle = self._current_cycle()
        if cycle is None or not cycle.response_started:
            rid = self._request_id()
            self.transport.write(_error_response("408 Request Timeout", detail, rid))
            if cycle is None:  # headers too slow: the app never had it (a slow body: its 499)
                self._answered(408, rid)
        if cycle is not None:
            cycle.keep_alive = False
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._body_timer)
        self._header_timer = self._body_timer = None
        super().connection_lost(exc)

    def _current_cycle(self) -> Any:
        """The app's cycle of the request being read, None when the app has not got it: on a
        kept-alive connection `self.cycle` is still the answered request before it (a slow second
        request was closed with no 408, and a 400 took the first request's id)."""
        cycle = self.cycle
        return None if cycle is None or cycle.response_complete else cycle

    def _request_id(self) -> str:
        """The app's id when it has the request (its 499 line), else the client's X-Request-ID
        if its headers got that far and it is one the app would take, else a new one."""
        cycle = self._current_cycle()
        if cycle is not None and cycle.more_body:  # the app is reading this request's body
            rid = cycle.scope.get("state", {}).get("request_id")
            if isinstance(rid, str):
                return rid
        return request_id_of({"headers": self.headers or []})

    def _answered(self, status: int, rid: str) -> None:
        """The access line and count of an answer the app never saw (no route: `<unmatched>`),
        timed from when its request began."""
        # "-": the request line was not read (httptools then says DELETE, its first method)
        method = self.parser.get_method().decode("ascii", "replace") if self._url_seen else "-"
        seconds = time.perf_counter() - self._began if self._began is not None else 0.0
        answered(self.observe, method, UNMATCHED, status, seconds, None, rid)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


def protocol_for(settings: Settings, observe: Observe | None = None) -> type[DeadlineProtocol]:
    """The protocol class with this server's deadlines (uvicorn instantiates it per connection)."""
    return type(
        "FlowhistoryProtocol",
        (DeadlineProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "body_min_rate": settings.body_min_rate,
            "observe": staticmethod(observe) if observe is not None else None,
        },
    )


def ensure_fd_limit(connections: int) -> None:
    """Raise the soft open-file limit to fit the connection cap, as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning(
                "open-file limit %d is below max_connections %d + %d spare: lower "
                "FLOWHISTORY_MAX_CONNECTIONS or raise the hard limit (ulimit -Hn)",
                new,
                connections,
                _SPARE_FDS,
            )


# SIGTERM: uvicorn stops accepting and gives requests in flight this long to be answered; the
# lifespan then stops the jobs (SHUTDOWN_JOBS_S in api/app.py), drains the writer's queue and
# checkpoints. Together well inside the 10 s a service manager waits before SIGKILL.
GRACEFUL_S = 3


def _observer(app: Any) -> Observe | None:
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    observe: Observe | None = getattr(metrics, "observe", None)
    return observe


def config_for(app: Any, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level="warning",
        # uvicorn's logging config and access log off: ours (api/observability) has the route and user
        log_config=None,
        access_log=False,
        http=protocol_for(settings, _observer(app)),
        # uvicorn refuses once the open connections reach the limit, counting the one asking:
        # a limit of N served N-1 (and 1 answered every request 503, /health too)
        limit_concurrency=settings.max_connections + 1,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=GRACEFUL_S,
    )


class CannotListen(Exception):
    """An address the server cannot listen on; `str()` is `HOST:PORT` and why, in words."""

    def __init__(self, host: str, port: int, reason: str, *, in_use: bool) -> None:
        super().__init__(f"{_hostport(host, port)}: {reason}")
        self.in_use = in_use


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"


def listen(host: str, port: int) -> list[socket.socket]:
    """The sockets `host`:`port` is served on, bound now (as asyncio's create_server binds them:
    every address the host resolves to, SO_REUSEADDR, IPv6 sockets IPv6-only).

    uvicorn binds only after the app's startup has run: a port in use opened the store, made a
    first start's admin and key and started the jobs, then logged two lines and exited 3. Bound
    first, `serve` says it in one line before anything starts."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise CannotListen(
            host, port, f"cannot be listened on (the host does not resolve: {exc})", in_use=False
        ) from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                in_use = exc.errno == errno.EADDRINUSE
                # "address already in use", the system's words, which scripts (and tests/live_server.py,
                # retrying on another port) look for
                why = (
                    "address already in use by another process"
                    if in_use
                    else f"cannot be listened on ({exc.strerror or exc})"
                )
                raise CannotListen(host, port, why, in_use=in_use) from None
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def run(app: Any, settings: Settings, sockets: list[socket.socket] | None = None) -> None:
    """Serve `app` until stopped (one process, one worker: it owns the store), on `sockets`
    when bound already (listen()), else on the settings' host and port."""
    ensure_fd_limit(settings.max_connections)
    # the ~120,000 objects of the app and its imports live as long as the process: frozen, the
    # collector's full passes (a batch's new objects set one off every few batches) skip them,
    # ~80 ms each, holding the GIL (BENCHMARKS.md, the batch endpoint)
    gc.collect()
    gc.freeze()
    _Server(config_for(app, settings)).run(sockets=sockets)


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the app it is stopping the moment the signal comes:
    uvicorn then gives requests in flight GRACEFUL_S and cancels the rest, and a batch cancelled
    part-stored answered 500 with no word of what it had stored (Context.stopping)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """The start line and banner once the port is bound: they came from the app's startup,
        before the bind, so a port in use logged "started" (and a first start's key) for a
        server that never ran."""
        await super().startup(sockets)
        announce = getattr(getattr(self.config.app, "state", None), "announce", None)
        if self.started and announce is not None:
            announce()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        ctx = getattr(getattr(self.config.app, "state", None), "ctx", None)
        if ctx is not None:
            ctx.stopping.set()
        super().handle_exit(sig, frame)
