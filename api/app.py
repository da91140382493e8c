"""The FastAPI app: opens the store in its lifespan, mounts the routers, maps errors to JSON.

Run with one uvicorn worker: one process owns the DuckDB file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from analytics.access.auth import load_secret
from analytics.access.users import FirstAdminKey, bootstrap_admin
from analytics.core.backup import remove_stale_partials
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import StoreLocked
from analytics.jobs.runtime import Runtime
from analytics.retention.unfinished import discard_unfinished_pass
from api import openapi
from api.body_limit import BodyLimit
from api.errors import CatchAll, add_exception_handlers
from api.head_requests import HeadAsGet
from api.observability import install as install_observability
from api.path_guard import ControlCharacterPaths
from api.redirects import RelativeRedirects
from api.routes import admin, batch, cost, executions, flows, health, insights, search, trends
from api.routes import alerts as alerts_routes
from api.routes import annotations as annotations_routes
from api.routes import backup as backup_routes
from api.routes import dashboard as dashboard_routes
from api.routes import download as download_routes
from api.routes import exports as exports_routes
from api.routes import jobs as jobs_routes
from api.routes import retention as retention_routes
from api.routes import sql as sql_routes
from api.security_headers import SecurityHeaders

log = logging.getLogger("flowhistory")

SHUTDOWN_JOBS_S = 4.0  # running jobs get this long to finish at shutdown; the rest is abandoned

ROUTERS = (
    health.router,
    download_routes.router,  # before executions: /executions/download is not a run id
    executions.router,
    batch.router,
    search.router,
    trends.router,
    insights.router,
    annotations_routes.router,
    cost.router,
    flows.router,
    admin.router,
    backup_routes.router,
    alerts_routes.router,
    jobs_routes.router,
    dashboard_routes.router,
    sql_routes.router,
    exports_routes.router,
    retention_routes.router,
)


def _banner(settings: Settings, first: FirstAdminKey | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    key_file = settings.admin_key_file
    lines = [f"flowhistory is serving {url} (store: {settings.db_path})"]
    sign_in = "sign in with that key, or an Open WebUI token"
    note = None  # what to do when there is no admin key to sign in (and run CLI commands) with
    if first is not None:
        made = (
            f"created an API key for admin '{first.user_id}' (the first of FLOWHISTORY_ADMIN_USER_IDS)"
            if first.named
            else "created user 'admin' with this API key"
        )
        lines += [
            f"First start: {made} (shown once, also saved to {key_file}, readable only by you):",
            f"    {first.key}",
        ]
    elif key_file.exists():
        lines.append(f"Admin API key: in {key_file}")
    elif settings.openwebui_db:
        note = (
            "Open WebUI mode: its admins are the admins (FLOWHISTORY_ADMIN_USER_IDS does not apply) and "
            "no admin API key is made here; CLI commands while this server runs need "
            "FLOWHISTORY_API_KEY set to an Open WebUI admin's API key"
        )
        sign_in = "sign in with an Open WebUI token or API key"
    else:
        note = (
            f"No admin API key in {key_file}: CLI commands while this server runs need one; stop it and "
            f"run `flowhistory keys create <admin id> --db {settings.db_path} > {key_file}`, or set "
            "FLOWHISTORY_API_KEY to an admin's key"
        )
        sign_in = "sign in with an admin's API key, or an Open WebUI token"
    if note is not None:
        lines.append(note)
    lines.append(f"Dashboard: {url}/  ({sign_in})")
    lines.append(f"Try: curl -H 'Authorization: Bearer <key>' {url}/api/v1/flows/")
    if settings.log_format == "json":  # one JSON object a line, and a key never goes to a log shipper
        if first is not None:
            log.warning(
                "first start: created an API key for admin '%s'; it is in %s", first.user_id, key_file
            )
        elif note is not None:
            log.warning("%s", note)
        return
    print("\n".join(lines), file=sys.stderr, flush=True)


def _announce(settings: Settings, first: FirstAdminKey | None) -> None:
    _banner(settings, first)
    log.info("started: serving http://%s:%d, store %s", settings.host, settings.port, settings.db_path)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            ctx = open_context(settings)
        except StoreLocked as exc:
            log.critical("cannot start: %s", exc.detail)
            print(f"flowhistory: cannot start: {exc.detail}", file=sys.stderr, flush=True)
            raise
        # The writer thread re-takes the GIL after each DuckDB call; with the default 5 ms
        # switch interval it waits behind the busy event loop each time (a 16-run commit took
        # ~20 ms instead of ~5). A shorter interval hands the GIL over sooner.
        sys.setswitchinterval(0.0001)
        # half-written copies a backup or a restore killed mid-way left (as large as the store)
        remove_stale_partials(settings.backups_dir)
        if str(settings.db_path) != ":memory:" and settings.db_path.parent != settings.backups_dir:
            remove_stale_partials(settings.db_path.parent)
        discard_unfinished_pass(ctx)  # archive files of a retention pass killed before its commit
        app.state.ctx = ctx
        app.state.secret = load_secret(settings)
        # said once the port is bound (api/server.py): a server that cannot bind never ran
        app.state.announce = partial(_announce, settings, bootstrap_admin(ctx))
        try:
            app.state.runtime = Runtime.start(ctx)  # scheduler, alert engine, webhooks
            if metrics is not None:
                metrics.start(ctx, app.state.runtime, settings)
        except BaseException:
            if metrics is not None:
                metrics.stop()
            ctx.close()
            raise
        try:
            yield
        finally:
            log.info("stopping: finishing jobs and queued writes")
            try:
                if metrics is not None:
                    metrics.stop()
                app.state.runtime.stop(
                    timeout=SHUTDOWN_JOBS_S
                )  # the one serving now (tests may start another)
            finally:
                ctx.close()
                log.info("stopped: store closed")

    app = FastAPI(
        title="flowhistory",
        summary="Execution history and analytics for AI flows",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(HeadAsGet)  # innermost: routed as the GET it asks about
    app.add_middleware(ControlCharacterPaths)
    app.add_middleware(RelativeRedirects)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAll)  # outside BodyLimit, so it also catches BodyLimit's
    app.add_middleware(SecurityHeaders)  # outside CatchAll: its 500s and 503s carry them too
    add_exception_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # request id, timing and access line around everything (CatchAll's 500s too), and /metrics
    metrics = install_observability(app, settings)
    openapi.install(app)  # every operation's error answers, with their JSON shape
    return app


app = create_app()
