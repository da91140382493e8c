"""Every SQL statement of alerting: rules, channels, states, transitions, silences, deliveries.

Write functions take the writer's connection (callers pass them to `ctx.store.write`); read
functions take a read cursor (`ctx.store.read`). Values are always `?` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from pydantic import ValidationError

from analytics.alerts.rules import Rule, State
from analytics.alerts.silences import Silence
from analytics.alerts.state_machine import RuleState, Transition
from analytics.core.store import Connection, one_row

_RULE_COLUMNS = (
    "id, name, created_by, metric, flow_id, owned_by, flow_version, node_id, model, window_s, operator,"
    " threshold, warning_threshold, recovery_threshold, pending_s, keep_firing_s, min_runs, no_data,"
    " renotify_s, paused, created_at, updated_at"
)
_RULE_FIELDS = (
    "id",
    "name",
    "created_by",
    "metric",
    "flow_id",
    "owned_by",
    "flow_version",
    "node_id",
    "model",
    "window",
    "operator",
    "threshold",
    "warning_threshold",
    "recovery_threshold",
    "pending_for",
    "keep_firing_for",
    "min_runs",
    "no_data",
    "renotify_every",
    "paused",
    "created_at",
    "updated_at",
)

STATES_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: timestamp() leaves its tz unbound, the list joins to object
        ("rule_id", pa.string()),
        ("flow_id", pa.string()),
        ("state", pa.string()),
        ("since", pa.timestamp("us")),
        ("pending_since", pa.timestamp("us")),
        ("last_breach_at", pa.timestamp("us")),
        ("last_notified_at", pa.timestamp("us")),
        ("value", pa.float64()),
        ("runs", pa.int64()),
        ("evaluated_at", pa.timestamp("us")),
        ("muted_event", pa.string()),
    ]
)
TRANSITIONS_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # as STATES_SCHEMA
        ("id", pa.string()),
        ("rule_id", pa.string()),
        ("flow_id", pa.string()),
        ("occurred_at", pa.timestamp("us")),
        ("from_state", pa.string()),
        ("to_state", pa.string()),
        ("event", pa.string()),
        ("value", pa.float64()),
        ("runs", pa.int64()),
        ("threshold", pa.float64()),
        ("reason", pa.string()),
        ("silenced_by", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class StoredTransition:
    id: str
    rule_id: str
    flow_id: str
    at: datetime
    transition: Transition


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    created_by: str
    url: str
    secret: str
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime
    kind: str = "webhook"
    config: dict[str, Any] | None = None

    @property
    def recipients(self) -> list[str] | None:
        """An email channel's addresses (None for the other kinds)."""
        return None if self.config is None else list(self.config.get("recipients") or [])


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    notification_id: str
    channel_id: str
    rule_id: str | None
    flow_id: str | None
    transition_id: str | None
    event: str
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float | None
    will_retry: bool
    body: str


# -- rules -------------------------------------------------------------------------------------


def _rule(row: tuple[Any, ...], channels: dict[str, list[str]]) -> Rule:
    data = dict(zip(_RULE_FIELDS, row, strict=True))
    data["channel_ids"] = channels.get(data["id"], [])
    return Rule.model_validate(data)


def _channel_links(conn: Connection, rule_ids: list[str] | None) -> dict[str, list[str]]:
    sql = "SELECT rule_id, channel_id FROM alert_rule_channels"
    params: list[Any] = []
    if rule_ids is not None:
        sql += " WHERE rule_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(rule_ids)
    links: dict[str, list[str]] = {}
    for rule_id, channel_id in conn.execute(sql + " ORDER BY rule_id, channel_id", params).fetchall():
        links.setdefault(rule_id, []).append(channel_id)
    return links


def load_rules(
    conn: Connection, rule_ids: list[str] | None = None, *, unreadable: list[tuple[str, str]] | None = None
) -> list[Rule]:
    """The stored rules (these ones), oldest first. With `unreadable`, a row that is no valid
    rule (stored by an older version, or by hand) is left out and listed there as (id, error)
    instead of failing the whole load: evaluation judges the other rules."""
    sql = f"SELECT {_RULE_COLUMNS} FROM alert_rules"
    params: list[Any] = []
    if rule_ids is not None:
        sql += " WHERE id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(rule_ids)
    rows = conn.execute(sql + " ORDER BY created_at, id", params).fetchall()
    links = _channel_links(conn, rule_ids)
    if unreadable is None:
        return [_rule(r, links) for r in rows]
    rules: list[Rule] = []
    for r in rows:
        try:
            rules.append(_rule(r, links))
        except ValidationError as exc:
            unreadable.append((str(r[0]), f"not a valid rule: {exc}"[:500]))
    return rules


def get_rule(conn: Connection, rule_id: str) -> Rule | None:
    found = load_rules(conn, [rule_id])
    return found[0] if found else None


def _rule_values(rule: Rule) -> list[Any]:
    return [
        rule.id,
        rule.name,
        rule.created_by,
        rule.metric.value,
        rule.flow_id,
        rule.owned_by,
        rule.flow_version,
        rule.node_id,
        rule.model,
        rule.window,
        rule.operator.value,
        rule.threshold,
        rule.warning_threshold,
        rule.recovery_threshold,
        rule.pending_for,
        rule.keep_firing_for,
        rule.min_runs,
        rule.no_data.value,
        rule.renotify_every,
        rule.paused,
        rule.created_at,
        rule.updated_at,
    ]


def _set_links(conn: Connection, rule: Rule) -> None:
    conn.execute("DELETE FROM alert_rule_channels WHERE rule_id = ?", [rule.id])
    if rule.channel_ids:
        conn.executemany(
            "INSERT INTO alert_rule_channels VALUES (?, ?)", [[rule.id, c] for c in rule.channel_ids]
        )


def insert_rule(conn: Connection, rule: Rule) -> Rule:
    marks = ", ".join("?" * len(_RULE_FIELDS))
    conn.execute(f"INSERT INTO alert_rules ({_RULE_COLUMNS}) VALUES ({marks})", _rule_values(rule))
    _set_links(conn, rule)
    return rule


def replace_rule(conn: Connection, rule: Rule) -> bool:
    """Every column but the id, and the rule's channel links; False (nothing written) when the
    rule is gone."""
    columns = [c.strip() for c in _RULE_COLUMNS.split(",")][1:]
    sets = ", ".join(f"{c} = ?" for c in columns)
    found = conn.execute(
        f"UPDATE alert_rules SET {sets} WHERE id = ? RETURNING 1", [*_rule_values(rule)[1:], rule.id]
    ).fetchall()
    if found:
        _set_links(conn, rule)
    return bool(found)


def flow_exists(conn: Connection, flow_id: str) -> bool:
    return bool(existing_flow_ids(conn, {flow_id}))


def existing_flow_ids(conn: Connection, flow_ids: set[str]) -> set[str]:
    """Of `flow_ids`, those with a row in `flows`, in one query. A flow exists while it has its
    row: flowhistory's own, or (Open WebUI mode) the copy its poller keeps until the orphan job
    purges the flow, and that purge deletes the flow's alert states with the row."""
    if not flow_ids:
        return set()
    rows = conn.execute("SELECT id FROM flows WHERE id IN (SELECT unnest(?::VARCHAR[]))", [sorted(flow_ids)])
    return {r[0] for r in rows.fetchall()}


def rule_exists(conn: Connection, rule_id: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM alert_rules WHERE id = ?", [rule_id]).fetchall())


def missing_channels(conn: Connection, channel_ids: list[str]) -> list[str]:
    """Of `channel_ids`, those no channel has (deleted since they were checked), in order."""
    if not channel_ids:
        return []
    found = conn.execute(
        "SELECT id FROM alert_channels WHERE id IN (SELECT unnest(?::VARCHAR[]))", [channel_ids]
    ).fetchall()
    there = {r[0] for r in found}
    return [c for c in channel_ids if c not in there]


def existing_rule_ids(conn: Connection, rule_ids: set[str]) -> set[str]:
    if not rule_ids:
        return set()
    rows = conn.execute(
        "SELECT id FROM alert_rules WHERE id IN (SELECT unnest(?::VARCHAR[]))", [sorted(rule_ids)]
    )
    return {r[0] for r in rows.fetchall()}


def delete_rule(conn: Connection, rule_id: str) -> None:
    for table in ("alert_rule_channels", "alert_states", "alert_transitions", "alert_silences"):
        conn.execute(f"DELETE FROM {table} WHERE rule_id = ?", [rule_id])
    conn.execute("DELETE FROM alert_rules WHERE id = ?", [rule_id])


def set_paused(conn: Connection, rule_id: str, paused: bool, now: datetime) -> None:
    conn.execute("UPDATE alert_rules SET paused = ?, updated_at = ? WHERE id = ?", [paused, now, rule_id])


def clear_states(conn: Connection, rule_id: str) -> None:
    conn.execute("DELETE FROM alert_states WHERE rule_id = ?", [rule_id])


# -- states and transitions --------------------------------------------------------------------


def load_states(conn: Connection, rule_ids: list[str] | None = None) -> dict[tuple[str, str], RuleState]:
    sql = (
        "SELECT rule_id, flow_id, state, since, pending_since, last_breach_at, last_notified_at, value,"
        " runs, evaluated_at, muted_event FROM alert_states"
    )
    params: list[Any] = []
    if rule_ids is not None:
        sql += " WHERE rule_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(rule_ids)
    return {
        (r[0], r[1]): RuleState(State(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
        for r in conn.execute(sql, params).fetchall()
    }


def save_states(conn: Connection, states: dict[tuple[str, str], RuleState]) -> None:
    """Replace the rows of these (rule, flow) pairs: one delete, one Arrow insert."""
    if not states:
        return
    keys = [f"{rule_id}\x00{flow_id}" for rule_id, flow_id in states]
    conn.execute(
        "DELETE FROM alert_states WHERE rule_id || chr(0) || flow_id IN (SELECT unnest(?::VARCHAR[]))",
        [keys],
    )
    items = list(states.items())
    table = pa.table(
        {
            "rule_id": [k[0] for k, _ in items],
            "flow_id": [k[1] for k, _ in items],
            "state": [s.state.value for _, s in items],
            "since": [s.since for _, s in items],
            "pending_since": [s.pending_since for _, s in items],
            "last_breach_at": [s.last_breach_at for _, s in items],
            "last_notified_at": [s.last_notified_at for _, s in items],
            "value": [s.value for _, s in items],
            "runs": [s.runs for _, s in items],
            "evaluated_at": [s.evaluated_at for _, s in items],
            "muted_event": [s.muted_event for _, s in items],
        },
        schema=STATES_SCHEMA,
    )
    conn.from_arrow(table).insert_into("alert_states")


def insert_transitions(conn: Connection, rows: list[StoredTransition]) -> None:
    if not rows:
        return
    t = [r.transition for r in rows]
    table = pa.table(
        {
            "id": [r.id for r in rows],
            "rule_id": [r.rule_id for r in rows],
            "flow_id": [r.flow_id for r in rows],
            "occurred_at": [r.at for r in rows],
            "from_state": [x.from_state.value for x in t],
            "to_state": [x.to_state.value for x in t],
            "event": [x.event for x in t],
            "value": [x.value for x in t],
            "runs": [x.runs for x in t],
            "threshold": [x.threshold for x in t],
            "reason": [x.reason for x in t],
            "silenced_by": [x.silenced_by for x in t],
        },
        schema=TRANSITIONS_SCHEMA,
    )
    conn.from_arrow(table).insert_into("alert_transitions")


def list_transitions(
    conn: Connection,
    *,
    rule_ids: list[str] | None,
    flow_ids: list[str] | None,
    limit: int,
    before: datetime | None = None,
) -> list[StoredTransition]:
    """Newest first; `rule_ids`/`flow_ids` None means any (the caller has already narrowed them)."""
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    if rule_ids is not None:
        clauses.append("rule_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(rule_ids)
    if flow_ids is not None:
        clauses.append("flow_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(flow_ids)
    if before is not None:
        clauses.append("occurred_at < ?")
        params.append(before)
    rows = conn.execute(
        "SELECT id, rule_id, flow_id, occurred_at, from_state, to_state, event, value, runs, threshold, reason,"
        f" silenced_by FROM alert_transitions WHERE {' AND '.join(clauses)} ORDER BY occurred_at DESC, id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [
        StoredTransition(
            r[0], r[1], r[2], r[3], Transition(State(r[4]), State(r[5]), r[6], r[7], r[8], r[9], r[10], r[11])
        )
        for r in rows
    ]


# -- channels and deliveries -------------------------------------------------------------------

_CHANNEL_COLUMNS = (
    "id, name, created_by, url, secret, enabled, disabled_reason, consecutive_failures, created_at, updated_at,"
    " kind, config"
)


def _channel(row: tuple[Any, ...]) -> Channel:
    cid, name, created_by, url, secret, enabled, reason, failures, created_at, updated_at, kind, config = row
    return Channel(
        cid,
        name,
        created_by,
        url,
        secret,
        enabled,
        reason,
        failures,
        created_at,
        updated_at,
        kind,
        orjson.loads(config) if config is not None else None,
    )


def _config(ch: Channel) -> str | None:
    return None if ch.config is None else orjson.dumps(ch.config).decode()


def load_channels(conn: Connection, channel_ids: list[str] | None = None) -> list[Channel]:
    sql = f"SELECT {_CHANNEL_COLUMNS} FROM alert_channels"
    params: list[Any] = []
    if channel_ids is not None:
        sql += " WHERE id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(channel_ids)
    return [_channel(r) for r in conn.execute(sql + " ORDER BY created_at, id", params).fetchall()]


def get_channel(conn: Connection, channel_id: str) -> Channel | None:
    found = load_channels(conn, [channel_id])
    return found[0] if found else None


def insert_channel(conn: Connection, ch: Channel) -> Channel:
    conn.execute(
        f"INSERT INTO alert_channels ({_CHANNEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ch.id,
            ch.name,
            ch.created_by,
            ch.url,
            ch.secret,
            ch.enabled,
            ch.disabled_reason,
            ch.consecutive_failures,
            ch.created_at,
            ch.updated_at,
            ch.kind,
            _config(ch),
        ],
    )
    return ch


def update_channel(conn: Connection, ch: Channel) -> Channel | None:
    """None (nothing written) when the channel is gone."""
    found = conn.execute(
        "UPDATE alert_channels SET name = ?, url = ?, secret = ?, enabled = ?, disabled_reason = ?,"
        " consecutive_failures = ?, updated_at = ?, config = ? WHERE id = ? RETURNING 1",
        [
            ch.name,
            ch.url,
            ch.secret,
            ch.enabled,
            ch.disabled_reason,
            ch.consecutive_failures,
            ch.updated_at,
            _config(ch),
            ch.id,
        ],
    ).fetchall()
    return ch if found else None


def delete_channel(conn: Connection, channel_id: str) -> None:
    conn.execute("DELETE FROM alert_outbox WHERE channel_id = ?", [channel_id])
    conn.execute("DELETE FROM alert_rule_channels WHERE channel_id = ?", [channel_id])
    conn.execute("DELETE FROM alert_channels WHERE id = ?", [channel_id])


def channel_ids_of_rules(conn: Connection, rule_ids: list[str]) -> dict[str, list[str]]:
    return _channel_links(conn, rule_ids)


_INSERT_DELIVERY = f"INSERT INTO alert_deliveries VALUES ({', '.join('?' * len(fields(Delivery)))})"


def _delivery_values(d: Delivery) -> list[Any]:
    """The row's values in the table's order (Delivery's fields are its columns)."""
    return [getattr(d, f.name) for f in fields(Delivery)]


def record_attempt(
    conn: Connection, d: Delivery, *, counts: bool, max_failures: int, now: datetime
) -> Channel | None:
    """Store one attempt and, when it `counts`, the channel's failure streak: a success resets
    it, the `max_failures`-th failure in a row disables the channel and says why."""
    conn.execute(_INSERT_DELIVERY, _delivery_values(d))
    if d.will_retry:
        conn.execute(
            "UPDATE alert_outbox SET attempt = ? WHERE notification_id = ? AND channel_id = ?",
            [d.attempt + 1, d.notification_id, d.channel_id],
        )
    else:
        drop_queued(conn, d.notification_id, d.channel_id)
    if counts and d.ok:
        conn.execute(
            "UPDATE alert_channels SET consecutive_failures = 0 WHERE id = ? AND consecutive_failures <> 0",
            [d.channel_id],
        )
    elif counts:
        what = f"HTTP {d.status_code}" if d.status_code is not None else (d.error or "error")
        conn.execute(
            "UPDATE alert_channels SET consecutive_failures = consecutive_failures + 1,"
            " enabled = CASE WHEN consecutive_failures + 1 >= ? THEN false ELSE enabled END,"
            " disabled_reason = CASE WHEN enabled AND consecutive_failures + 1 >= ?"
            " THEN ? ELSE disabled_reason END,"
            " updated_at = ? WHERE id = ?",
            [
                max_failures,
                max_failures,
                f"disabled at {now.isoformat(timespec='seconds')}Z after {max_failures} failed deliveries"
                f" in a row; last: {what}",
                now,
                d.channel_id,
            ],
        )
    return get_channel(conn, d.channel_id)


def list_deliveries(
    conn: Connection, *, channel_ids: list[str], rule_id: str | None = None, limit: int = 100
) -> list[Delivery]:
    clauses = ["channel_id IN (SELECT unnest(?::VARCHAR[]))"]
    params: list[Any] = [channel_ids]
    if rule_id is not None:
        clauses.append("rule_id = ?")
        params.append(rule_id)
    rows = conn.execute(
        "SELECT id, notification_id, channel_id, rule_id, flow_id, transition_id, event, attempt, attempted_at, ok,"
        " status_code, error, duration_ms, will_retry, body FROM alert_deliveries"
        f" WHERE {' AND '.join(clauses)} ORDER BY attempted_at DESC, attempt DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [Delivery(*r) for r in rows]


def record_suppressed(conn: Connection, rows: list[Delivery]) -> None:
    """Notifications a silence held back: logged beside the attempts, never sent, no streak."""
    if rows:
        conn.executemany(_INSERT_DELIVERY, [_delivery_values(d) for d in rows])


# -- silences ----------------------------------------------------------------------------------

_SILENCE_COLUMNS = "id, rule_id, flow_id, starts_at, ends_at, comment, created_by, created_at, expired_by"


def insert_silence(conn: Connection, s: Silence) -> Silence:
    conn.execute(
        f"INSERT INTO alert_silences ({_SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            s.id,
            s.rule_id,
            s.flow_id,
            s.starts_at,
            s.ends_at,
            s.comment,
            s.created_by,
            s.created_at,
            s.expired_by,
        ],
    )
    return s


def load_silences(conn: Connection, *, ending_after: datetime | None = None) -> list[Silence]:
    """Newest first; with `ending_after`, only those still in force or to come at that time."""
    sql = f"SELECT {_SILENCE_COLUMNS} FROM alert_silences"
    params: list[Any] = []
    if ending_after is not None:
        sql += " WHERE ends_at > ?"
        params.append(ending_after)
    return [Silence(*r) for r in conn.execute(sql + " ORDER BY created_at DESC, id", params).fetchall()]


def get_silence(conn: Connection, silence_id: str) -> Silence | None:
    row = one_row(conn.execute(f"SELECT {_SILENCE_COLUMNS} FROM alert_silences WHERE id = ?", [silence_id]))
    return Silence(*row) if row else None


def expire_silence(conn: Connection, silence_id: str, now: datetime, by: str) -> Silence | None:
    """End it now (a silence not yet begun ends before it starts); one already over is kept as is."""
    conn.execute(
        "UPDATE alert_silences SET starts_at = least(starts_at, ?), ends_at = ?, expired_by = ?"
        " WHERE id = ? AND ends_at > ?",
        [now, now, by, silence_id, now],
    )
    return get_silence(conn, silence_id)


def flow_name(conn: Connection, flow_id: str) -> str | None:
    """A flow's name for a human-readable alert (Slack, email); None when it is gone."""
    row = one_row(conn.execute("SELECT name FROM flows WHERE id = ?", [flow_id]))
    return None if row is None else str(row[0])


# -- the outbox: notifications not yet delivered, resumed at the next start (migration 11) -----

OUTBOX_COLUMNS = (
    "notification_id, channel_id, event, body, rule_id, flow_id, transition_id, attempt, queued_at"
)


def queue_notifications(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Rows of OUTBOX_COLUMNS, numbered after those already queued."""
    found = one_row(conn.execute("SELECT coalesce(max(seq), 0) FROM alert_outbox"))
    start = int(found[0]) if found else 0
    conn.executemany(
        f"INSERT INTO alert_outbox (seq, {OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(start + i, *row) for i, row in enumerate(rows, 1)],
    )


def queued_notifications(conn: Connection) -> list[tuple[Any, ...]]:
    """What waits to be sent, in the order it was queued."""
    return conn.execute(f"SELECT {OUTBOX_COLUMNS} FROM alert_outbox ORDER BY seq").fetchall()


def drop_queued(conn: Connection, notification_id: str, channel_id: str) -> None:
    conn.execute(
        "DELETE FROM alert_outbox WHERE notification_id = ? AND channel_id = ?", [notification_id, channel_id]
    )
