"""The poller: Open WebUI's users, groups and flows mirrored into the directory within ~2 s.

Every `openwebui_poll_s` it reads users (id, role, api_key), whether API keys are enabled (the
newest `config` row's `auth.api_key.enable`, and the endpoints its keys are restricted to when
`auth.api_key.endpoint_restrictions` is on) and groups (id, user_ids) in full
(small tables; a role change does not touch `updated_at` in Open WebUI, so no cheaper check is
exact) and the flows' `(id, updated_at)` fingerprint; flows are read in full only when that
changed or something was updated in the last seconds (`updated_at` has one-second resolution).
When anything changed, changed flows are copied into the store first (so a flow the directory
shows has its row and its version), then the directory's mirror is replaced in one assignment.
Request-time auth stays an in-memory lookup. A failed poll keeps the last mirror (logged):
an unreachable Open WebUI never makes users or flows vanish; what it read is not taken as
seen, so the next poll reads it again (a role change is never lost to a failed poll). A value
that is not JSON, or not of its column's kind, is read as the safe empty value and logged once
(a flow's grants as `{}`: private), so one bad row cannot stop every other change.

Runs of flows gone from Open WebUI are invisible at once (the directory no longer has the flow,
and every route reads flows from it); `purge_orphans`, a scheduled job, deletes them after the
grace to free the space. A flow id that comes (back) with another owner than the last one
flowhistory had for it is another flow (an owner changed in place counts the same: a deletion
and a re-creation between two polls look just like it), whether or not Open WebUI has that user
yet: the runs stored under that id are deleted before the new flow is shown, so they never reach
its owner. An owner read as NULL changes nothing of that: it is not remembered as an owner, so
back with the same owner (or a restore) the flow's runs come back with it, as they were.

While Open WebUI cannot be read, what the mirror lacks cannot be told from what does not exist:
a read asked for by a request (`refresh`: a flow missing from the mirror) that fails or does not
finish in time raises OpenWebUIUnreadable (503, retry) rather than letting the request answer
404; analytics/access/auth.py does the same for a credential the mirror lacks, and answers 503
to every request once the mirror is older than `openwebui_max_stale_s`.

The newest `config` row is read every poll; when that read fails (the table renamed away by a
migration) the last value read stands, and the next poll reads it again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from analytics.access.auth import OpenWebUIUnreadable, unreadable
from analytics.access.directory import FlowAcl, Mirror, User
from analytics.access.users import hash_key
from analytics.core.context import Context
from analytics.core.errors import FlowHistoryError, UpstreamFailed
from analytics.core.flow_version import flow_version
from analytics.flows.registry import Flow, mirror_flows, purge_flow
from analytics.openwebui.db import WebUIDatabase, json_as, missing_column

log = logging.getLogger("flowhistory")

_USERS = 'SELECT id, role, api_key, name, email FROM "user"'
# an Open WebUI whose `user` table has no `api_key` (versions that moved keys out of it)
_USERS_WITHOUT_KEYS = 'SELECT id, role, NULL AS api_key, name, email FROM "user"'
_GROUPS = 'SELECT id, user_ids FROM "group"'
_CONFIG = "SELECT data FROM config ORDER BY id DESC LIMIT 1"  # Open WebUI reads the newest row
# the flows' fingerprint: their stamps, and the owner and grants (a change made with plain SQL, a
# migration or a hand edit, may leave updated_at as it was: access must follow it all the same)
_FLOW_PRINT = "SELECT id, updated_at, user_id, access_control FROM flow"
_FLOWS = (
    "SELECT id, user_id, name, description, nodes, edges, meta, access_control, created_at, updated_at"
    " FROM flow"
)
MIN_READ_GAP_S = 0.2  # between two reads: reads asked for by requests never run back to back
RECENT_S = 3  # updated_at within this many seconds of now: read flows in full (same-second edits)


def _key_paths(api_key: dict[str, Any]) -> tuple[str, ...]:
    """`auth.api_key.allowed_endpoints` as Open WebUI splits it: a comma-separated text (some
    versions keep a list), each entry stripped."""
    allowed = api_key.get("allowed_endpoints")
    entries = (
        allowed.split(",") if isinstance(allowed, str) else allowed if isinstance(allowed, list) else [""]
    )
    return tuple(str(e).strip() for e in entries)


def _seconds(value: Any) -> int:
    """An epoch-seconds column (SQLite keeps what it is given: text, a float), 0 when unreadable."""
    try:
        return max(0, min(int(float(value or 0)), 253402300799))  # up to 9999-12-31
    except (TypeError, ValueError, OverflowError):
        return 0


def _epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(_seconds(value), UTC).replace(tzinfo=None)


def _fingerprint(rows: list[tuple[Any, ...]]) -> str:
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: str(r[0])):
        digest.update(repr(row).encode())
    return digest.hexdigest()


class OpenWebUISync:
    """One poller per server; `sync_once` is also what tests and the first start call."""

    def __init__(self, ctx: Context, url: str | None = None) -> None:
        self.ctx = ctx
        self.db = WebUIDatabase(url or ctx.settings.openwebui_db or "", ctx.settings.openwebui_timeout_s)
        self._prints: dict[str, str] = {}
        self._flows: dict[str, Flow] = {}
        # each flow id's last owner other than NULL, gone flows' too (what a new owner is compared with)
        self._owners: dict[str, str] = {}
        self._users: dict[str, User] = {}
        self._keys: dict[str, str] = {}
        self._groups_of: dict[str, frozenset[str]] = {}
        self._api_keys: bool | None = None  # the last `auth.api_key.enable` read (None: never read)
        self._key_paths: tuple[str, ...] | None = None  # endpoint restrictions' paths (None: off)
        self._config_failed = False  # the last config read failed (logged once per outage)
        self._stale = True  # what was read is not installed yet
        self._warned: set[tuple[str, str]] = set()  # bad values already logged
        self._stop = threading.Event()
        self._wake = threading.Event()  # a read asked for now (a flow missing from the mirror)
        self._polled = threading.Condition()
        self._last_started = 0.0  # when the last finished poll began (time.time())
        self.failure: str | None = None  # why the last finished poll failed (None: it did not)
        self._thread: threading.Thread | None = None

    def sync_once(self) -> bool:
        """Read Open WebUI; install a new mirror if anything changed. Answers whether it did."""
        prints: dict[str, str] = {}  # taken as seen only once the mirror holds what they describe
        self._read_users(prints)
        self._read_groups(prints)
        self._read_flows(prints)
        changed = self._stale
        if changed or not self.ctx.directory.external:
            self.ctx.directory.install(
                Mirror(
                    dict(self._users), dict(self._groups_of), self._acls(), dict(self._keys), self._key_paths
                )
            )
            self._stale = False
        else:
            self.ctx.directory.synced_at = time.time()
        self._prints.update(prints)
        return changed

    def _changed(self, name: str, rows: list[tuple[Any, ...]], prints: dict[str, str]) -> bool:
        fp = _fingerprint(rows)
        if self._prints.get(name) == fp:
            return False
        prints[name] = fp
        return True

    def _json(self, raw: Any, kind: type[list[Any]] | type[dict[str, Any]], what: str) -> Any:
        """A JSON column as `json_as` reads it; a bad value logged once (the poll runs each second)."""
        value, wrong = json_as(raw, kind)
        if wrong is not None and (what, repr(raw)) not in self._warned:
            self._warned.add((what, repr(raw)))
            log.warning("Open WebUI's %s %s: read as %s", what, wrong, "[]" if kind is list else "{}")
        return value

    def _access_control(self, fid: Any, raw: Any) -> Any:
        """A flow's grants; `{}`, private, when bad. '' too: `json_as` reads it as NULL, which
        for grants is public (every user could read and write the flow); Open WebUI cannot
        read it at all."""
        if raw in ("", b""):
            if ("access_control", fid) not in self._warned:
                self._warned.add(("access_control", fid))
                log.warning("Open WebUI's flow %s's access_control is empty text: read as {}", fid)
            return {}
        return self._json(raw, dict, f"flow {fid}'s access_control")

    def _api_keys_enabled(self) -> bool:
        """Open WebUI's `auth.api_key.enable`: its newest config row's value, else its env's,
        which flowhistory cannot see (the `openwebui_api_keys` setting stands in for it)."""
        fallback = self.ctx.settings.openwebui_api_keys
        try:
            rows = self.db.rows(_CONFIG, keep_connection=True)  # a missing table is no broken link
        except Exception:
            # mid-migration, or an Open WebUI without the table: the last value read stands (a
            # brief outage must not turn keys Open WebUI refuses on), and the next poll asks again
            known = fallback if self._api_keys is None else self._api_keys
            if not self._config_failed:
                log.warning("Open WebUI's `config` table cannot be read; API keys stay: %s", known)
                self._config_failed = True
            return known
        self._config_failed = False
        config: Any = self._json(rows[0][0], dict, "newest config row") if rows else None
        keys: Any = config
        for part in ("auth", "api_key"):
            keys = keys.get(part) if isinstance(keys, dict) else None
        keys = keys if isinstance(keys, dict) else {}
        enabled = keys.get("enable")
        self._api_keys = enabled if isinstance(enabled, bool) else fallback
        self._key_paths = _key_paths(keys) if keys.get("endpoint_restrictions") is True else None
        return self._api_keys

    def _read_users(self, prints: dict[str, str]) -> None:
        try:
            rows = self.db.rows(_USERS, keep_connection=True)
        except Exception as exc:
            # without the optional column, the users (roles, deletions) are still read: one
            # query failing kept the whole mirror, a pending user in, for as long as it lasted.
            # Any other failure (a cancelled or timed-out statement) fails the poll, which keeps
            # the last mirror: read without keys, every Open WebUI key was a 401 until the next
            if not missing_column(exc):
                raise
            rows = self.db.rows(_USERS_WITHOUT_KEYS)
            if ("user.api_key", "") not in self._warned:
                self._warned.add(("user.api_key", ""))
                log.warning(
                    "Open WebUI's user table cannot be read with api_key (%s): its API keys are not accepted",
                    exc,
                )
        enabled = self._api_keys_enabled()
        if not self._changed("users", [*rows, ("api keys enabled", enabled, self._key_paths)], prints):
            return
        # a NULL role stays no role ('', refused), never the text "None"
        self._users = {
            str(i): User(str(i), name, email, role if isinstance(role, str) else "")
            for i, role, _, name, email in rows
        }
        # Open WebUI keeps keys in plain text; only their hashes are held here. With its API keys
        # off, Open WebUI refuses them, and so does flowhistory (its own keys stay)
        self._keys = {
            hash_key(key): str(i) for i, _, key, _, _ in rows if enabled and isinstance(key, str) and key
        }
        self._stale = True

    def _read_groups(self, prints: dict[str, str]) -> None:
        rows = self.db.rows(_GROUPS)
        if not self._changed("groups", rows, prints):
            return
        groups: dict[str, set[str]] = {}
        for gid, members in rows:
            for uid in self._json(members, list, f"group {gid}'s user_ids") or []:
                if isinstance(uid, str):
                    groups.setdefault(uid, set()).add(str(gid))
        self._groups_of = {u: frozenset(g) for u, g in groups.items()}
        self._stale = True

    def _read_flows(self, prints: dict[str, str]) -> None:
        stamps = self.db.rows(_FLOW_PRINT)
        newest = max((_seconds(row[1]) for row in stamps), default=0)
        if not self._changed("flows", stamps, prints) and newest < time.time() - RECENT_S:
            return
        flows: dict[str, Flow] = {}
        for fid, uid, name, desc, nodes, edges, meta, ac, created, updated in self.db.rows(_FLOWS):
            nodes = self._json(nodes, list, f"flow {fid}'s nodes") or []
            edges = self._json(edges, list, f"flow {fid}'s edges") or []
            flows[str(fid)] = Flow(
                str(fid),
                "" if uid is None else str(uid),  # NULL: no owner (never the text "None", a user id)
                name or "",
                desc,
                nodes,
                edges,
                self._json(meta, dict, f"flow {fid}'s meta") or {},
                self._access_control(fid, ac),
                _epoch(created),
                _epoch(updated),
                flow_version(nodes, edges),
            )
        changed = [f for fid, f in flows.items() if self._flows.get(fid) != f]
        gone = self._flows.keys() - flows.keys()
        if not changed and not gone:
            return
        owners = self._known_owners(changed)
        for f in changed:
            before = owners.get(f.id, "")
            if before and f.user_id and before != f.user_id:
                runs = purge_flow(self.ctx, f.id)  # before the new owner's flow is shown
                log.warning(
                    "flow %s is in Open WebUI again, owned by %s (was %s): another flow; its %d earlier runs deleted",
                    f.id,
                    f.user_id,
                    before,
                    runs,
                )
        # the store first: a flow the directory shows has its row. While its owner reads NULL the
        # stored copy keeps the last owner known (the directory shows none): after a restart
        # that copy is what a new owner is compared with
        mirror_flows(
            self.ctx, [replace(f, user_id=owners.get(f.id, "")) if not f.user_id else f for f in changed]
        )
        for f in changed:
            if f.user_id:
                self._owners[f.id] = f.user_id
        self._flows = flows
        self._stale = True

    def _known_owners(self, changed: list[Flow]) -> dict[str, str]:
        """The last owner other than NULL flowhistory knew for each changed flow's id (this
        process's, else the store's copy, which a gone flow keeps until purged); none for an id
        never seen with one.

        The rule: an id whose owner changes from one user id to another (any other, whether
        Open WebUI has that user yet or not) names a new flow, and the runs stored under it are
        deleted before it is shown, so the old flow's runs never reach the new owner, now or
        when that user appears later. An owner read as NULL (a row mid-migration) deletes
        nothing and is not remembered: back with the same owner, nothing changed."""
        if any(f.id not in self._owners for f in changed):  # new to this process: ask the store
            stored = self.ctx.store.read(lambda c: c.execute("SELECT id, user_id FROM flows").fetchall())
            for fid, uid in stored:
                if uid and fid not in self._owners:
                    self._owners[fid] = uid
        return {f.id: self._owners[f.id] for f in changed if f.id in self._owners}

    def _acls(self) -> dict[str, FlowAcl]:
        return {f.id: FlowAcl(f.id, f.user_id, f.access_control, f.version) for f in self._flows.values()}

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> OpenWebUISync:
        """The first sync runs here, so no request is ever answered from the store's users."""
        self.sync_once()
        self._thread = threading.Thread(target=self._run, name="openwebui-sync", daemon=True)
        self._thread.start()
        self.ctx.directory.refresher = self.refresh
        self.ctx.directory.miss_check = self.check_missing
        return self

    def check_missing(self) -> None:
        """A flow the mirror lacks while Open WebUI cannot be read may have been made there since:
        OpenWebUIUnreadable (503, retry), not "Flow not found" (a client drops what is missing)."""
        age = self.ctx.directory.mirror_age or 0.0
        if self.failure is not None or age > self.ctx.settings.openwebui_behind_s:
            raise unreadable(age)

    def refresh(self, timeout: float) -> bool:
        """Read Open WebUI now rather than at the next poll, and wait for it (at most `timeout`
        s): a flow created there a moment ago is not mirrored yet, and its first run, saved by
        the client at once, was refused 404 and lost. Callers share one read; True once a read
        that began after the call has finished. OpenWebUIUnreadable (503) when that read failed
        or did not finish in time: the flow may well be there, and the client is to retry."""
        asked = time.time()
        with self._polled:
            self._wake.set()
            done = self._polled.wait_for(lambda: self._last_started >= asked, timeout)
            failure = self.failure
        if not done or failure is not None:
            raise OpenWebUIUnreadable(
                "Open WebUI's database cannot be read now, so whether this exists cannot be"
                " checked: retry in a few seconds"
            )
        return True

    def _run(self) -> None:
        poll_s = self.ctx.settings.openwebui_poll_s
        while not self._stop.is_set():
            self._wake.wait(poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            started = time.time()
            failure: str | None = None
            try:
                self.sync_once()
            except Exception as exc:  # Open WebUI down or mid-migration: keep the last mirror, try again
                failure = f"{type(exc).__name__}: {exc}"
                if self.failure is None and not self._stop.is_set():  # once an outage; a stop's cut is none
                    log.exception("reading Open WebUI's database failed; keeping the last mirror")
            else:
                if self.failure is not None:
                    log.warning("Open WebUI's database can be read again")
            with self._polled:
                self._last_started = started
                self.failure = failure
                self._polled.notify_all()
            self._stop.wait(MIN_READ_GAP_S)  # asked reads never run back to back

    def stop(self) -> None:
        self.ctx.directory.refresher = None
        self.ctx.directory.miss_check = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            if self._thread.is_alive():  # a read stalled on Open WebUI's database: end it now
                self.db.interrupt()
                self._thread.join(timeout=3)
        self.db.close()


def load_once(ctx: Context) -> None:
    """One sync for a process without a poller (a CLI command): it then sees Open WebUI's
    users, groups and flows, as the server does. UpstreamFailed when the database cannot be
    read: a command must not fall back to the store's own users."""
    sync = OpenWebUISync(ctx)
    try:
        sync.sync_once()
    except FlowHistoryError:
        raise
    except Exception as exc:
        raise UpstreamFailed(f"cannot read Open WebUI's database (FLOWHISTORY_OPENWEBUI_DB): {exc}") from exc
    finally:
        sync.db.close()


def purge_orphans(ctx: Context) -> dict[str, Any]:
    """The scheduled job: delete the runs (and the copied row) of flows gone from Open WebUI for
    longer than the grace. Only on a fresh mirror (a stale one could be missing flows), and not
    when Open WebUI has no flow at all: that is a new or wrong database far more often than a
    deployment whose last flow was deleted."""
    directory = ctx.directory
    if not directory.external:
        return {"skipped": "not in Open WebUI mode"}
    if time.time() - directory.synced_at > max(10 * ctx.settings.openwebui_poll_s, 10):
        return {"skipped": "the Open WebUI mirror is stale"}
    known = {f.id for f in directory.flows()}
    if not known:  # a fresh, empty Open WebUI database (a wrong URL) must not cost every run
        return {
            "skipped": "Open WebUI has no flows at all: nothing is purged (is FLOWHISTORY_OPENWEBUI_DB right?)"
        }
    stored = ctx.store.read(
        lambda c: c.execute("SELECT id FROM flows UNION SELECT DISTINCT flow_id FROM executions").fetchall()
    )
    now = time.time()
    purged: dict[str, int] = {}
    for (fid,) in stored:
        if fid in known:
            continue
        since = directory.gone_since.setdefault(fid, now)  # first seen missing after a restart: now
        if now - since >= ctx.settings.openwebui_orphan_grace_s and directory.flow(fid) is None:
            purged[fid] = purge_flow(ctx, fid)
            directory.gone_since.pop(fid, None)
    return {"flows": len(purged), "runs": sum(purged.values())}
