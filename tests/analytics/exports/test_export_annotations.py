"""Run annotations (notes, tags, ratings) in the export: search's tags, has_note and rating
filters and stats by tag over `open_export` give the store's answers, also after annotations
change and runs are deleted (once a cycle has run), and an export written before annotations
were exported refuses to answer instead of finding no annotated run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.core.context import Context
from analytics.exports import export_status, run_export
from analytics.exports.layout import EXPORT_SCHEMA_VERSION
from analytics.exports.open_folder import EXPORT_READER, open_export
from analytics.exports.sql_sandbox import SqlRefused, run_sql
from analytics.history import annotations, search
from analytics.history import runs as history
from analytics.history.filters import ExecutionFilter
from tests.factories import ADMIN
from tests.factories.exports import add_runs, seed_flow

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
COLUMNS = ["execution_id", "flow_id", "note", "tags", "rating", "updated_by", "updated_at"]

FILTERS: list[dict[str, Any]] = [
    {"tags": {"all_": ["t1"]}},
    {"tags": {"all_": ["t1", "t2"]}},
    {"tags": {"all_": ["nowhere"]}},
    {"has_note": True},
    {"has_note": False},
    {"rating": 1},
    {"rating": -1},
    {"rating": 1, "tags": {"all_": ["t2"]}, "status": {"any_": ["success"]}},
]


def _seed(ctx: Context) -> tuple[str, str, list[str], list[str]]:
    alpha, beta = seed_flow(ctx, "alpha"), seed_flow(ctx, "beta")
    a_runs = add_runs(ctx, alpha, DAYS, 8)
    b_runs = add_runs(ctx, beta, DAYS, 4)
    for i, run in enumerate(a_runs):
        if i % 2 == 0:
            tags = ["t1", "t2"] if i % 4 == 0 else ["t1"]
            note = f"look at run {i}" if i % 3 == 0 else None
            annotations.set_annotation(ctx, ADMIN, alpha, run, {"tags": tags, "note": note, "rating": 1})
        elif i % 5 == 0:
            annotations.set_annotation(ctx, ADMIN, alpha, run, {"note": "odd one", "rating": -1})
    for run in b_runs[:5]:
        annotations.set_annotation(ctx, ADMIN, beta, run, {"tags": ["t1"], "rating": -1})
    return alpha, beta, a_runs, b_runs


def _answers(ctx: Context, viewer: Any, flows: tuple[str, ...]) -> dict[str, Any]:
    """Every annotation question, asked through the library as a notebook would."""
    out: dict[str, Any] = {}
    for spec in FILTERS:
        flt = ExecutionFilter.model_validate(spec)
        key = json.dumps(spec, sort_keys=True)
        found = search.search_executions(ctx, viewer, filter=flt, limit=500)
        out[f"count {key}"] = search.count_executions(ctx, viewer, filter=flt)
        out[f"ids {key}"] = sorted(h.row.id for h in found.items)
        for fid in flows:
            out[f"stats {fid} {key}"] = history.get_stats(ctx, viewer, fid, flt)
    return out


def _check_same(ctx: Context, root: Path, flows: tuple[str, ...]) -> dict[str, Any]:
    mine = _answers(ctx, ADMIN, flows)
    with open_export(root) as exported:
        theirs = _answers(exported, EXPORT_READER, flows)
    assert theirs == mine
    return mine


def test_annotation_filters_and_stats_by_tag_match_the_store(ctx: Context) -> None:
    alpha, beta, a_runs, b_runs = _seed(ctx)
    root = ctx.settings.data_dir / "exports"
    run_export(ctx)
    mine = _check_same(ctx, root, (alpha, beta))
    t1 = json.dumps({"tags": {"all_": ["t1"]}}, sort_keys=True)
    assert mine[f"count {t1}"] == 12 + 5  # not vacuous: what the old export answered 0 to
    assert mine[f"stats {alpha} {t1}"].total_executions == 12
    # a run's detail shows its annotation over the export as in the store
    with open_export(root) as exported:
        for fid, run in ((alpha, a_runs[0]), (alpha, a_runs[5]), (alpha, a_runs[1]), (beta, b_runs[0])):
            got = history.get_execution(exported, EXPORT_READER, fid, run)
            assert got == history.get_execution(ctx, ADMIN, fid, run)
        assert history.get_execution(exported, EXPORT_READER, alpha, a_runs[0]).annotation is not None

    # annotations change in place (no run changes: no day is rewritten), runs are deleted
    annotations.set_annotation(ctx, ADMIN, alpha, a_runs[2], {"tags": ["t2"], "note": "now t2 only"})
    annotations.set_annotation(ctx, ADMIN, alpha, a_runs[3], {"tags": ["t1", "t2"], "rating": 1})
    annotations.delete_annotation(ctx, ADMIN, alpha, a_runs[4])
    annotations.set_annotation(ctx, ADMIN, alpha, a_runs[6], {"tags": ["t1"]})  # the note cleared
    history.delete_execution(ctx, ADMIN, alpha, a_runs[8])  # an annotated run
    history.delete_executions(ctx, ADMIN, beta)  # a whole flow's runs, all annotated
    summary = run_export(ctx)
    assert (
        summary["tables"]["annotations"]["rows"]
        == ctx.store.read(lambda c: c.execute("SELECT count(*) FROM execution_annotations").fetchone())[0]
    )
    after = _check_same(ctx, root, (alpha, beta))
    assert after != mine and after[f"count {t1}"] == 10
    # the file holds exactly the store's annotations
    with open_export(root) as exported:
        theirs = exported.store.read(
            lambda c: c.execute(
                "SELECT execution_id, flow_id, note, tags, rating, updated_by, updated_at"
                " FROM execution_annotations ORDER BY 1"
            ).fetchall()
        )
    stored = ctx.store.read(
        lambda c: c.execute(
            "SELECT execution_id, flow_id, note, tags, rating, updated_by, updated_at"
            " FROM execution_annotations ORDER BY 1"
        ).fetchall()
    )
    assert theirs == stored and len(stored) == 13


def test_the_sql_console_reads_annotations(ctx: Context) -> None:
    alpha, *_ = _seed(ctx)
    root = ctx.settings.data_dir / "exports"
    run_export(ctx)
    sql = (
        "SELECT count(*) AS n FROM executions e JOIN annotations a ON a.execution_id = e.id"
        f" WHERE list_contains(a.tags, 't1') AND e.flow_id = '{alpha}'"
    )
    assert run_sql(root, sql).table.to_pylist() == [{"n": 12}]
    described = run_sql(root, "DESCRIBE annotations").table.to_pylist()
    assert [(r["column_name"], r["column_type"]) for r in described] == list(
        zip(
            COLUMNS,
            ["VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR[]", "SMALLINT", "VARCHAR", "TIMESTAMP WITH TIME ZONE"],
            strict=True,
        )
    )
    doc = json.loads((root / "_schema.json").read_text())
    assert doc["export_schema_version"] == EXPORT_SCHEMA_VERSION == 2
    assert doc["tables"]["annotations"]["path"] == "annotations/annotations.parquet"
    assert [c["name"] for c in doc["tables"]["annotations"]["columns"]] == COLUMNS
    manifest = json.loads((root / "_manifest.json").read_text())
    assert manifest["tables"]["annotations"] == ["annotations/annotations.parquet"]
    assert export_status(ctx)["tables"]["annotations"]["rows"] == 19


def _make_old(root: Path) -> None:
    """What an export written before annotations were exported looks like."""
    if (root / "annotations").exists():
        (root / "annotations" / "annotations.parquet").unlink()
        (root / "annotations").rmdir()
    for name in ("_schema.json", "_manifest.json"):
        doc = json.loads((root / name).read_text())
        doc["export_schema_version"] = 1
        doc["tables"].pop("annotations", None)
        (root / name).write_text(json.dumps(doc))


def test_an_export_older_than_annotations_refuses_annotation_questions(ctx: Context) -> None:
    alpha, *_ = _seed(ctx)
    root = ctx.settings.data_dir / "exports"
    run_export(ctx)
    _make_old(root)
    with open_export(root) as exported:
        # what does not read annotations still answers
        assert search.count_executions(exported, EXPORT_READER) == 36
        assert history.get_stats(exported, EXPORT_READER, alpha).total_executions == 24
        for spec in FILTERS:
            flt = ExecutionFilter.model_validate(spec)
            with pytest.raises(duckdb.Error, match=r"annotations/annotations\.parquet.*Run an export cycle"):
                search.count_executions(exported, EXPORT_READER, filter=flt)
            with pytest.raises(duckdb.Error, match="Run an export cycle"):
                search.search_executions(exported, EXPORT_READER, filter=flt, limit=10)
            with pytest.raises(duckdb.Error, match="Run an export cycle"):
                history.get_stats(exported, EXPORT_READER, alpha, flt)
    for sql in (
        "SELECT count(*) FROM annotations",
        "SELECT * FROM annotations",
        "FROM annotations SELECT tags",
    ):
        with pytest.raises(SqlRefused, match="Run an export cycle"):
            run_sql(root, sql)
    run_export(ctx)  # the next cycle writes them
    _check_same(ctx, root, (alpha,))
    assert run_sql(root, "SELECT count(*) AS n FROM annotations").table.to_pylist() == [{"n": 19}]


def test_an_export_without_runs_or_not_yet_published_has_no_annotations_to_refuse(
    ctx: Context, tmp_path: Path
) -> None:
    seed_flow(ctx)
    root = ctx.settings.data_dir / "exports"
    run_export(ctx)  # an empty store: an empty annotations file
    flt = ExecutionFilter.model_validate({"tags": {"all_": ["t1"]}})
    with open_export(root) as exported:
        assert search.count_executions(exported, EXPORT_READER, filter=flt) == 0
    assert run_sql(root, "SELECT count(*) AS n FROM annotations").table.to_pylist() == [{"n": 0}]
    starting = tmp_path / "starting"
    (starting / "_staging").mkdir(parents=True)  # a first cycle has started, nothing published
    with open_export(starting) as exported:
        assert search.count_executions(exported, EXPORT_READER, filter=flt) == 0
    assert run_sql(starting, "SELECT count(*) AS n FROM annotations").table.to_pylist() == [{"n": 0}]


def test_the_annotations_and_flows_files_keep_one_schema_across_cycles(ctx: Context) -> None:
    """DuckDB's COPY marks a column `not null` when a file's rows hold no NULL: with no notes yet
    `note` and `rating` were required, the next cycle (one note) made them optional, and a
    reader that kept the first schema broke. Every column of these files is nullable."""
    import pyarrow.parquet as pq

    alpha = seed_flow(ctx, "alpha")
    [run] = add_runs(ctx, alpha, DAYS[:1], 1)
    root = ctx.settings.data_dir / "exports"
    schemas = []
    for annotate in (False, True):
        if annotate:
            annotations.set_annotation(ctx, ADMIN, alpha, run, {"tags": ["t1"], "note": "n", "rating": 1})
        run_export(ctx)
        schemas.append(
            {
                name: pq.read_schema(root / name)
                for name in ("annotations/annotations.parquet", "flows/flows.parquet")
            }
        )
    assert schemas[0] == schemas[1]
    for schema in schemas[0].values():
        assert all(field.nullable for field in schema), schema
