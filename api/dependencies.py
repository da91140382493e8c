"""What routes declare: the store context, the server's runtime, and the caller (`CurrentUser`,
`AdminUser`).

The credential is `Authorization: Bearer <token>`, or the `token` cookie Open WebUI sets (the
peer takes it too). A browser sends that cookie with requests other sites make, so on a write it
counts only when the request is not cross-site: `Sec-Fetch-Site` (what the browser itself says)
`same-origin` or `none`, or without it no `Origin` but this host's. A script sends neither header
and a page on another site cannot leave them out. Checking it touches only the in-memory
directory, so it is cheap enough for the ingest path and runs on the event loop.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from analytics.access.auth import authenticate
from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied
from analytics.history import scope
from analytics.jobs.runtime import Runtime


async def get_ctx(request: Request) -> Context:
    """Async on purpose: a sync dependency would cost every request a threadpool hop."""
    return context_of(request)


def context_of(request: Request) -> Context:
    ctx: Context | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise RuntimeError("the store is not open: the app's lifespan did not run")
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


COOKIE_METHODS = frozenset({"GET", "HEAD"})


async def get_runtime(request: Request, _: Ctx) -> Runtime:
    """The scheduler and the alert engine the lifespan started (jobs, run-now). It works on the
    store, so it depends on it too (the OpenAPI then declares the store's 503)."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("no runtime: the app's lifespan did not run")
    return runtime


ServerRuntime = Annotated[Runtime, Depends(get_runtime)]


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    if request.method in COOKIE_METHODS or not _cross_site(request):
        return request.cookies.get("token")
    return None


def _cross_site(request: Request) -> bool:
    """A request a page of another site may have made (cookies attached)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:  # the browser's own word (no page can set it): trusted behind a proxy
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")  # older browsers: compared with the Host asked for
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


async def current_user(request: Request) -> Viewer:
    ctx = context_of(request)
    viewer = authenticate(ctx, request.app.state.secret, _credential(request), request.url.path)
    request.state.user_id = viewer.id  # for the access line (api/observability/middleware.py)
    return viewer


CurrentUser = Annotated[Viewer, Depends(current_user)]


async def admin_user(viewer: CurrentUser) -> Viewer:
    if not viewer.is_admin:
        raise AccessDenied("Only admins may do this")
    return viewer


AdminUser = Annotated[Viewer, Depends(admin_user)]


async def _flow_first(flow_id: str, viewer: CurrentUser, ctx: Ctx) -> None:
    """Before a flow route's query and body are validated (see scope.may_read)."""
    scope.may_read(ctx, viewer, flow_id)


# the contract's order (404, then 403) before a query's or a body's 422, on `/flows/{flow_id}/...`
FLOW_FIRST = [Depends(_flow_first)]


async def flow_first_of(request: Request) -> None:
    """The same order for a request refused before its route's dependencies ran (FastAPI reads
    the body first, so a body that is not JSON was a 422 to a stranger and for a missing flow):
    the credential (401), then the flow its path names (404, then 403)."""
    viewer = await current_user(request)
    flow_id = request.path_params.get("flow_id")
    if isinstance(flow_id, str):
        scope.may_read(context_of(request), viewer, flow_id)
