"""What the export looks like as far as the store knows: last cycles, errors, per-table totals.

Read from the store only (never from the target), so the status answers even when the target
is down, which is exactly when it is needed.
"""

from __future__ import annotations

import json
from typing import Any

from analytics.core.clock import iso_utc
from analytics.core.context import Context
from analytics.core.store import Connection, one_row
from analytics.exports.layout import EXPORT_SCHEMA_VERSION
from analytics.exports.targets import open_target


def _cycle(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    started, finished, ok, error, summary = row
    return {
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "duration_s": round((finished - started).total_seconds(), 3),
        "ok": bool(ok),
        "error": error,
        "summary": json.loads(summary) if summary else None,
    }


def export_status(ctx: Context) -> dict[str, Any]:
    """The last export and compaction (ok or the error), the last successful export's tables."""
    target = open_target(ctx.settings)

    def read(c: Connection) -> dict[str, Any]:
        def last(kind: str, only_ok: bool = False) -> tuple[Any, ...] | None:
            return one_row(
                c.execute(
                    "SELECT started_at, finished_at, ok, error, summary FROM export_cycles"
                    f" WHERE target = ? AND kind = ? {'AND ok' if only_ok else ''}"
                    " ORDER BY started_at DESC LIMIT 1",
                    [target.url, kind],
                )
            )

        failures = one_row(
            c.execute(
                "SELECT count(*) FROM export_cycles WHERE target = ? AND kind = 'export' AND NOT ok"
                " AND started_at > coalesce((SELECT max(started_at) FROM export_cycles"
                " WHERE target = ? AND kind = 'export' AND ok), TIMESTAMP '1970-01-01')",
                [target.url, target.url],
            )
        )
        return {
            "last": _cycle(last("export")),
            "last_ok": _cycle(last("export", True)),
            "compaction": _cycle(last("compaction")),
            "failures_since_ok": int(failures[0]) if failures else 0,
        }

    found = ctx.store.read(read)
    last, last_ok = found["last"], found["last_ok"]
    tables = (last_ok or {}).get("summary") or {}
    compaction = found["compaction"]
    tables = dict(tables.get("tables") or {})
    if compaction and compaction["ok"] and last_ok and compaction["finished_at"] > last_ok["finished_at"]:
        for name, after in ((compaction["summary"] or {}).get("tables") or {}).items():
            tables[name] = {**tables.get(name, {}), **after}
    return {
        "target": target.url,
        "schema_version": EXPORT_SCHEMA_VERSION,
        "ok": None if last is None else last["ok"],
        "error": None if last is None or last["ok"] else last["error"],
        "failures_since_ok": found["failures_since_ok"],
        "last_cycle": last,
        "last_ok_cycle": last_ok,
        "last_compaction": compaction,
        "tables": tables,
    }
