"""A run archived more than once comes back as it was when last archived, with its payload.

A trim archives the run with its payload and keeps every metric column in the store; a cost
recomputed afterwards is on the copy archived when the run is deleted. Restore once kept, per
id, the copy with the payload, so the run came back with the trim-time cost and nodes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from analytics.core.context import Context
from analytics.cost import report as cost_report
from analytics.cost.prices import Price
from analytics.history import ingest
from analytics.retention import apply, policies, restore
from analytics.retention.policies import Policy
from tests.factories import ROOT as ADMIN
from tests.factories import make_execution
from tests.factories.retention import NOW, make_flows

# what a trim empties (analytics/retention/apply.py)
PAYLOAD = ("inputs", "outputs", "outputs_same", "node_results")
CREATED = NOW - timedelta(days=40)
START, END = datetime(2000, 1, 1), NOW + timedelta(days=10)  # every run


def _post(ctx: Context, fid: str, model: str = "acme-model", *, at: datetime = CREATED) -> str:
    """A run of one model node, 1000 tokens in and out; outputs == node_results (shared)."""
    node_results = {
        "model_1": {"modelId": model, "usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}
    }
    item = make_execution(fid, node_results=node_results, outputs=node_results, created_at=at.isoformat())
    (result,) = ingest.save_executions(ctx, ADMIN, [item])
    assert result.status == "stored" and result.id
    return result.id


def _row(ctx: Context, run_id: str) -> dict[str, Any] | None:
    """Every column of the run (JSON as text), or None when it is not in the store."""

    def read(c: Any) -> dict[str, Any] | None:
        cur = c.execute(
            "SELECT * REPLACE (id::VARCHAR AS id, inputs::VARCHAR AS inputs, outputs::VARCHAR AS outputs,"
            " node_results::VARCHAR AS node_results, errors::VARCHAR AS errors, meta::VARCHAR AS meta,"
            " replay_of::VARCHAR AS replay_of) FROM executions WHERE id = ?::UUID",
            [run_id],
        )
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        return dict(zip(names, rows[0], strict=True)) if rows else None

    row: dict[str, Any] | None = ctx.store.read(read)
    return row


def _price(ctx: Context, per_million_in: float, per_million_out: float) -> None:
    """Price `acme-*` and re-price every run (the stored tokens, the new price)."""
    others = [p for p in ctx.prices.all() if p.model_pattern != "acme-*"]
    cost_report.set_prices(ctx, [*others, Price("acme-*", per_million_in, per_million_out, date(2020, 1, 1))])
    cost_report.recompute_costs(ctx, start=START, end=END)


def _pass(ctx: Context, policy: Policy, now: datetime) -> dict[str, Any]:
    policies.set_policy(ctx, ADMIN, policy)
    out: dict[str, Any] = apply.run_retention(ctx, now=now, compact=False)
    policies.delete_policy(ctx, ADMIN, None)  # nothing removes the restored run again
    return out


def _expected(last: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """`last` (the row when it was deleted) with the payload of `full`."""
    return {**last, **{k: full[k] for k in PAYLOAD}}


def test_a_run_repriced_after_its_trim_comes_back_with_the_cost_it_had_when_deleted(ctx: Context) -> None:
    fid = make_flows(ctx, ["f"])["f"]
    rid = _post(ctx, fid)
    original = _row(ctx, rid)
    assert original is not None and original["cost"] is None  # no price for the model yet
    assert original["outputs"] is None and original["outputs_same"]  # the shared copy

    assert _pass(ctx, Policy(payload_ttl_days=30), NOW)["trimmed"] == 1
    _price(ctx, 1.0, 2.0)
    before_delete = _row(ctx, rid)
    assert before_delete is not None and before_delete["node_results"] is None
    assert before_delete["cost"] == 0.003 and [n["cost"] for n in before_delete["nodes"]] == [0.003]
    # the same pass time as the trim's (the copies tie on archived_at): the delete is the newer
    assert _pass(ctx, Policy(max_age_days=35), NOW)["deleted"] == 1
    assert _row(ctx, rid) is None

    out = restore.restore(ctx, start=START, end=END)
    assert (out["restored"], out["refilled"]) == (1, 0)
    back = _row(ctx, rid)
    assert back is not None
    assert back["cost"] == 0.003 and [n["cost"] for n in back["nodes"]] == [0.003]
    assert back == _expected(before_delete, original)


def test_restored_trimmed_again_and_deleted_again_comes_back_as_last_deleted(ctx: Context) -> None:
    """Four copies of one id (trim, delete, trim, delete), priced differently each time; beside
    it a run deleted without a trim and a run that is trimmed and still in the store."""
    fid = make_flows(ctx, ["f"])["f"]
    rid = _post(ctx, fid)
    original = _row(ctx, rid)
    assert original is not None

    assert _pass(ctx, Policy(payload_ttl_days=30), NOW)["trimmed"] == 1
    _price(ctx, 1.0, 2.0)
    assert _pass(ctx, Policy(max_age_days=35), NOW + timedelta(hours=1))["deleted"] == 1
    assert restore.restore(ctx, start=START, end=END)["restored"] == 1
    first_back = _row(ctx, rid)
    assert first_back is not None and first_back["cost"] == 0.003
    assert first_back == _expected(first_back, original)  # its payload back

    kept = _post(ctx, fid, at=NOW - timedelta(days=31))  # trimmed, and left in the store
    kept_row = _row(ctx, kept)
    assert kept_row is not None
    assert _pass(ctx, Policy(payload_ttl_days=30), NOW + timedelta(hours=2))["trimmed"] == 2
    _price(ctx, 2.0, 4.0)
    last = _row(ctx, rid)
    kept_trimmed = _row(ctx, kept)
    assert last is not None and last["cost"] == 0.006 and last["node_results"] is None
    assert kept_trimmed is not None and kept_trimmed["cost"] == 0.006
    whole = _post(ctx, fid, at=NOW - timedelta(days=38))  # deleted with its payload, never trimmed
    whole_row = _row(ctx, whole)
    assert whole_row is not None and whole_row["cost"] == 0.006
    assert _pass(ctx, Policy(max_age_days=35), NOW + timedelta(hours=3))["deleted"] == 2

    out = restore.restore(ctx, start=START, end=END)
    # the refilled run is not also counted as already present (it was, in both)
    assert (out["restored"], out["refilled"], out["already_present"]) == (2, 1, 0)
    back = _row(ctx, rid)
    assert back is not None
    assert back["cost"] == 0.006 and [n["cost"] for n in back["nodes"]] == [0.006]
    assert back == _expected(last, original)
    assert _row(ctx, whole) == whole_row
    # the run still in the store gets its payload back and keeps its own columns
    assert _row(ctx, kept) == _expected(kept_trimmed, kept_row)
