"""An exact in-memory mirror of who exists and who may see what: users, groups, flow ACLs, keys.

Every request needs the caller's role and the flow's owner and grants. A DuckDB statement
costs ~80 µs and a point lookup ~0.4 ms, more than the whole budget of an ingest request. The
mirror is exact because this process owns the file: every write to these tables goes through
the writer, and reloads the mirror after it commits (they are small: thousands of rows).

In Open WebUI mode (analytics/openwebui) users, groups, flows and Open WebUI's API keys come from
Open WebUI's database instead: its poller `install`s a `Mirror` of them, and only flowhistory's
own API keys are still read from the store. Requests still only read memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from analytics.core.store import Connection, Store


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str | None
    email: str | None
    role: str


@dataclass(frozen=True, slots=True)
class FlowAcl:
    id: str
    owner_id: str
    access_control: dict[str, Any] | None
    version: str = ""


@dataclass(slots=True)
class _Snapshot:
    users: dict[str, User] = field(default_factory=dict)
    groups_of: dict[str, frozenset[str]] = field(default_factory=dict)
    flows: dict[str, FlowAcl] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # sha256 hex of the key -> user id


@dataclass(frozen=True, slots=True)
class Mirror:
    """Who exists and what flows exist, as an external source (Open WebUI) says."""

    users: dict[str, User]
    groups_of: dict[str, frozenset[str]]
    flows: dict[str, FlowAcl]
    keys: dict[str, str]  # sha256 hex of an Open WebUI API key -> user id (never the key itself)
    # Open WebUI's API key endpoint restrictions: the paths its keys may call (None: any)
    key_paths: tuple[str, ...] | None = None


class Directory:
    """Readers get a consistent snapshot; a reload swaps it in one assignment."""

    def __init__(self) -> None:
        self._snap = _Snapshot()
        self._mirror: Mirror | None = None
        self._own_keys: dict[str, str] = {}
        self._lock = threading.Lock()  # a store reload and a mirror install never interleave
        # flows that were in the mirror and left it: id -> when it was first seen missing
        self.gone_since: dict[str, float] = {}
        self.synced_at: float = 0.0  # the last successful poll of the external source
        # reads the external source now and waits (at most the timeout given): the poller's
        self.refresher: Callable[[float], bool] | None = None
        # raises (OpenWebUIUnreadable, 503) when a miss cannot be told from a lag: the poller's
        self.miss_check: Callable[[], None] | None = None
        # why only admins may read here (an export folder: its access control is not exported,
        # so a user's answers would follow rules the server does not), or None
        self.admins_only: str | None = None

    @property
    def external(self) -> bool:
        """True in Open WebUI mode: users, groups and flows are not ours to change."""
        return self._mirror is not None

    def install(self, mirror: Mirror) -> None:
        """Replace users, groups and flows with the external source's (our own keys stay)."""
        with self._lock:
            now = time.time()
            if self._mirror is not None:
                for fid in self._mirror.flows.keys() - mirror.flows.keys():
                    self.gone_since.setdefault(fid, now)
            for fid in mirror.flows.keys() & self.gone_since.keys():
                del self.gone_since[fid]
            self._mirror = mirror
            self._snap = self._from_mirror(mirror)
            self.synced_at = now

    @property
    def mirror_age(self) -> float | None:
        """Seconds since the external source was last read (None outside Open WebUI mode)."""
        return max(0.0, time.time() - self.synced_at) if self.external else None

    def _from_mirror(self, mirror: Mirror) -> _Snapshot:
        keys = {**self._own_keys, **mirror.keys}
        return _Snapshot(dict(mirror.users), dict(mirror.groups_of), dict(mirror.flows), keys)

    def load(self, conn: Connection) -> None:
        with self._lock:
            self._own_keys = dict(conn.execute("SELECT key_hash, user_id FROM api_keys").fetchall())
            if self._mirror is not None:
                self._snap = self._from_mirror(self._mirror)
                return
            self._load_store(conn)

    def _load_store(self, conn: Connection) -> None:
        snap = _Snapshot()
        for uid, name, email, role in conn.execute("SELECT id, name, email, role FROM users").fetchall():
            snap.users[uid] = User(uid, name, email, role)
        groups: dict[str, set[str]] = {}
        for gid, uid in conn.execute("SELECT group_id, user_id FROM group_members").fetchall():
            groups.setdefault(uid, set()).add(gid)
        snap.groups_of = {u: frozenset(g) for u, g in groups.items()}
        for fid, owner, ac, version in conn.execute(
            "SELECT id, user_id, access_control, version FROM flows"
        ).fetchall():
            snap.flows[fid] = FlowAcl(fid, owner, orjson.loads(ac) if ac is not None else None, version)
        snap.keys = dict(self._own_keys)
        self._snap = snap  # one assignment: readers see the old or the new, never a mix

    def reload(self, store: Store) -> None:
        store.read(self.load)

    def user(self, user_id: str) -> User | None:
        return self._snap.users.get(user_id)

    def users(self) -> list[User]:
        return list(self._snap.users.values())

    def groups_of(self, user_id: str) -> frozenset[str]:
        return self._snap.groups_of.get(user_id, frozenset())

    def put_flow(self, flow: FlowAcl) -> None:
        """One flow changed: cheaper than a reload, which would make creating n flows O(n²)."""
        self._snap.flows[flow.id] = flow

    def drop_flow(self, flow_id: str) -> None:
        self._snap.flows.pop(flow_id, None)

    def flow(self, flow_id: str) -> FlowAcl | None:
        return self._snap.flows.get(flow_id)

    def refresh_for_miss(self, flow_id: str, timeout: float = 2.0) -> bool:
        """A flow the mirror lacks may have been created in Open WebUI since its last read: read
        it now (blocking, off the event loop) and say whether the flow is there then."""
        refresher = self.refresher
        if refresher is None:
            return False
        refresher(timeout)
        return self.flow(flow_id) is not None

    def check_missing(self) -> None:
        """Before a flow the mirror lacks is answered as missing: the external source's check."""
        if self.miss_check is not None:
            self.miss_check()

    def flows(self) -> list[FlowAcl]:
        return list(self._snap.flows.values())

    def user_for_key(self, key_hash: str) -> str | None:
        return self._snap.keys.get(key_hash)

    def key_paths(self, key_hash: str) -> tuple[str, ...] | None:
        """The paths an Open WebUI key may call, when Open WebUI restricts its keys to some
        endpoints; None for any path (and for flowhistory's own keys)."""
        mirror = self._mirror
        if mirror is None or mirror.key_paths is None or key_hash not in mirror.keys:
            return None
        return mirror.key_paths
