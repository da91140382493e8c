"""Annotations on a real DuckDB file: upsert, access, validation, and search through ExecutionFilter."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core.context import Context
from analytics.core.errors import AccessDenied, NotFound
from analytics.flows import registry as flows
from analytics.history import annotations, ingest
from analytics.history import runs as history
from analytics.history.annotations import AnnotationUpdate
from analytics.history.filters import ExecutionFilter, visible_clause, where
from tests.factories import OWNER, READER, STRANGER, WRITER
from tests.factories import ROOT as ADMIN


@pytest.fixture
def flow_id(ctx: Context) -> str:
    for uid in ("owner", "writer", "reader", "stranger"):
        users.create_user(ctx, uid)
    return flows.create_flow(
        ctx,
        OWNER,
        name="f",
        nodes=[],
        edges=[],
        access_control={"read": {"user_ids": ["reader"]}, "write": {"user_ids": ["writer"]}},
    ).id


def save(ctx: Context, flow_id: str, user: str = "owner") -> str:
    [r] = ingest.save_executions(
        ctx, ADMIN, [{"flow_id": flow_id, "status": "success", "execution_time": 1, "user_id": user}]
    )
    assert r.id is not None
    return r.id


def count(ctx: Context, viewer: Viewer, **filter_fields: Any) -> int:
    sql, params = where(visible_clause(ctx.directory, viewer), *ExecutionFilter(**filter_fields).clauses())
    return ctx.store.read(
        lambda c: c.execute(f"SELECT count(*) FROM executions WHERE {sql}", params).fetchall()
    )[0][0]


def test_set_get_replace_and_clear(ctx: Context, flow_id: str) -> None:
    run = save(ctx, flow_id)
    assert annotations.get_annotation(ctx, OWNER, flow_id, run) is None
    saved = annotations.set_annotation(
        ctx, WRITER, flow_id, run, {"note": "looks off", "tags": ["bug", "gpt-4o", "bug"], "rating": -1}
    )
    assert (saved.note, saved.tags, saved.rating, saved.updated_by) == (
        "looks off",
        ["bug", "gpt-4o"],
        -1,
        "writer",
    )
    assert annotations.get_annotation(ctx, OWNER, flow_id, run) == saved
    # PUT replaces the whole annotation: what is left out is cleared
    again = annotations.set_annotation(ctx, OWNER, flow_id, run, AnnotationUpdate(rating=1))
    assert (again.note, again.tags, again.rating, again.updated_by) == (None, [], 1, "owner")
    assert annotations.annotations_for(ctx, run) == again
    annotations.delete_annotation(ctx, OWNER, flow_id, run)
    assert annotations.get_annotation(ctx, OWNER, flow_id, run) is None
    annotations.delete_annotation(ctx, OWNER, flow_id, run)  # clearing twice is fine


def test_write_needs_write_access_and_read_needs_the_run(ctx: Context, flow_id: str) -> None:
    own = save(ctx, flow_id, user="reader")
    theirs = save(ctx, flow_id, user="owner")
    for viewer, exc in ((READER, AccessDenied), (STRANGER, AccessDenied)):
        with pytest.raises(exc):
            annotations.set_annotation(ctx, viewer, flow_id, own, {"note": "x"})
        with pytest.raises(exc):
            annotations.delete_annotation(ctx, viewer, flow_id, own)
    for viewer in (OWNER, WRITER, ADMIN):
        annotations.set_annotation(ctx, viewer, flow_id, theirs, {"note": viewer.id})
    annotations.set_annotation(ctx, OWNER, flow_id, own, {"note": "on the reader's run"})
    # a reader sees annotations on their own runs only, and cannot tell others' runs exist
    assert annotations.get_annotation(ctx, READER, flow_id, own) is not None
    with pytest.raises(NotFound, match=r"^Execution not found$"):
        annotations.get_annotation(ctx, READER, flow_id, theirs)
    with pytest.raises(AccessDenied):
        annotations.get_annotation(ctx, STRANGER, flow_id, own)


def test_unknown_malformed_or_other_flows_runs_are_not_found(ctx: Context, flow_id: str) -> None:
    other = flows.create_flow(ctx, OWNER, name="g", nodes=[], edges=[]).id
    elsewhere = save(ctx, other)
    for run in (elsewhere, "00000000-0000-7000-8000-000000000000", "nope"):
        with pytest.raises(NotFound):
            annotations.set_annotation(ctx, OWNER, flow_id, run, {"note": "x"})
        with pytest.raises(NotFound):
            annotations.delete_annotation(ctx, OWNER, flow_id, run)
    assert annotations.annotations_for(ctx, "nope") is None


def test_annotation_of_a_deleted_run_is_not_shown(ctx: Context, flow_id: str) -> None:
    run = save(ctx, flow_id)
    annotations.set_annotation(ctx, OWNER, flow_id, run, {"note": "keep?", "tags": ["t"]})
    history.delete_execution(ctx, OWNER, flow_id, run)
    assert annotations.annotations_for(ctx, run) is None
    with pytest.raises(NotFound):
        annotations.get_annotation(ctx, OWNER, flow_id, run)
    assert count(ctx, OWNER, tags={"all_": ["t"]}) == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"note": "x" * 10_001}, "note"),
        ({"tags": ["ok"] * 51}, "tags"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["has space"]}, "tags"),
        ({"tags": ["-leading"]}, "tags"),
        ({"tags": [3]}, "tags"),
        ({"rating": 0}, "rating"),
        ({"rating": 2}, "rating"),
        ({"rating": True}, "rating"),
        ({"rating": "1"}, "rating"),
        ({"color": "red"}, "color"),
    ],
)
def test_bad_input_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        AnnotationUpdate.model_validate(data)
    assert exc.value.errors()[0]["loc"][0] == field


def test_limits_and_normalisation_accept_the_edges() -> None:
    form = AnnotationUpdate(note="x" * 10_000, tags=[f"t{i}" for i in range(50)], rating=-1)
    assert len(form.tags) == 50
    assert AnnotationUpdate(note="   ").note is None
    assert AnnotationUpdate(tags=["é-ok", "a.b:c/d+e#f_9", "x" * 64]).tags[0] == "é-ok"


def test_search_by_tags_note_and_rating(ctx: Context, flow_id: str) -> None:
    a, b, c, hidden = save(ctx, flow_id), save(ctx, flow_id), save(ctx, flow_id), save(ctx, flow_id)
    mine = save(ctx, flow_id, user="reader")
    annotations.set_annotation(
        ctx, OWNER, flow_id, a, {"note": "slow", "tags": ["perf", "gpt"], "rating": -1}
    )
    annotations.set_annotation(ctx, OWNER, flow_id, b, {"tags": ["gpt"], "rating": 1})
    annotations.set_annotation(ctx, OWNER, flow_id, c, {"note": " ", "rating": 1})
    annotations.set_annotation(ctx, OWNER, flow_id, mine, {"note": "reader's", "tags": ["gpt"]})
    assert hidden  # a run with no annotation
    assert count(ctx, OWNER) == 5
    assert count(ctx, OWNER, tags={"all_": ["gpt"]}) == 3
    assert count(ctx, OWNER, tags={"all_": ["gpt", "perf"]}) == 1
    assert count(ctx, OWNER, has_note=True) == 2
    assert count(ctx, OWNER, has_note=False) == 3  # the blank note was stored as none
    assert count(ctx, OWNER, rating=1) == 2
    assert count(ctx, OWNER, rating=-1, tags={"all_": ["perf"]}) == 1
    # row visibility still applies: the reader finds only their own run
    assert count(ctx, READER, tags={"all_": ["gpt"]}) == 1
    assert count(ctx, STRANGER, has_note=True) == 0
