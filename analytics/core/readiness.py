"""Readiness: can this process do its work? The store is open, its schema is at this code's head,
and the writer thread runs and can commit (liveness, `/health`, only says the process answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from analytics.core import migrations
from analytics.core.errors import NotReady

if TYPE_CHECKING:
    from analytics.core.context import Context


class Ready(TypedDict):
    ready: bool
    store: str
    migrations: str
    writer: str
    openwebui: str  # "not used", "read", or "cannot be read (last read N s ago)"


def _openwebui(ctx: Context) -> str:
    """Open WebUI mode: whether its poller reads its database (the mirror is not behind)."""
    age = ctx.directory.mirror_age
    if age is None:
        return "not used"
    if age > ctx.settings.openwebui_behind_s:
        return f"cannot be read (last read {int(age)} s ago)"
    return "read"


def parts(ctx: Context) -> Ready:
    """Each part's state; ready when they read open, current, alive."""
    store = ctx.store
    writer = store.writer_state  # "alive", "stopped", or "cannot commit (why)"
    if store.closed:
        return Ready(
            ready=False, store="closed", migrations="unknown", writer=writer, openwebui=_openwebui(ctx)
        )
    try:
        version = store.read(migrations.version)
    except Exception as exc:  # a store that cannot answer is not ready; say which part
        return Ready(
            ready=False,
            store=f"unreadable ({type(exc).__name__})",
            migrations="unknown",
            writer=writer,
            openwebui=_openwebui(ctx),
        )
    head = migrations.head()
    schema = "current" if version == head else f"at {version}, head is {head}"
    openwebui = _openwebui(ctx)
    return Ready(
        ready=schema == "current" and writer == "alive" and openwebui in ("not used", "read"),
        store="open",
        migrations=schema,
        writer=writer,
        openwebui=openwebui,
    )


def check(ctx: Context) -> Ready:
    """The parts when all are ready; NotReady naming those that are not."""
    state = parts(ctx)
    if not state["ready"]:
        wrong = [
            f"{k} {v}"
            for k, v in state.items()
            if k != "ready" and v not in ("open", "current", "alive", "read", "not used")
        ]
        raise NotReady("not ready: " + "; ".join(wrong))
    return state
