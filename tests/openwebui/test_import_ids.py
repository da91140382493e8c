"""`import openwebui` against ids an outside tester stored in Open WebUI's `flow_execution`: a
UUID kept as a BLOB, an id holding a NUL, the very same id twice (a table without its primary
key); and the source named another way, a second import while one reads the file, flows whose
JSON columns hold empty text, a run whose flow only flowhistory still has."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from analytics.access import users
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.openwebui import importer
from api.app import create_app
from tests.factories import SECRET, bearer
from tests.openwebui.webui_db import WebUIDb

T0 = 1_750_000_000
NODES = [{"id": "model_1", "type": "model"}]


def _source(db: WebUIDb) -> str:
    db.add_user("alice", "admin")
    return db.add_flow("alice", nodes=NODES, created_at=T0 - 100)


def _stored(ctx: Context) -> dict[str, str]:
    """Each stored run's id and the `which` its inputs name."""
    rows = ctx.store.read(
        lambda c: c.execute("SELECT CAST(id AS VARCHAR), inputs::VARCHAR FROM executions").fetchall()
    )
    return {r[0]: json.loads(r[1])["which"] if r[1] else "" for r in rows}


def _report(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ledger(ctx: Context) -> list[str]:
    return sorted(
        r[0] for r in ctx.store.read(lambda c: c.execute("SELECT id FROM openwebui_import_ids").fetchall())
    )


# -- 1. an id SQLite keeps as a BLOB ---------------------------------------------------------------


def test_a_blob_id_is_imported_under_its_text(tmp_path: Path, ctx: Context) -> None:
    """A UUID's text stored as a BLOB was listed by its text and fetched with `id IN ('<text>')`,
    which no BLOB equals: dropped without a word, and every rerun crashed on the empty chunk."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        good = db.add_execution(fid, "alice", created_at=T0, inputs={"which": "text"})
        blob = str(uuid.uuid4())
        db.add_execution(fid, "alice", execution_id=blob, created_at=T0 + 1, inputs={"which": "blob"})
        db.execute("UPDATE flow_execution SET id = CAST(id AS BLOB) WHERE id = ?", (blob,))
        assert db.execute("SELECT count(*) FROM flow_execution WHERE typeof(id) = 'blob'") == [(1,)]
        report = tmp_path / "r.jsonl"
        for chunk_rows in (1, 100):  # alone in its chunk, and the rerun reads nothing again
            summary = importer.import_openwebui(ctx, db.url, report=report, chunk_rows=chunk_rows)
            assert summary.finished and _stored(ctx) == {good: "text", blob: "blob"}
            assert (summary.total_read, summary.total_stored, summary.total_in_source) == (2, 2, 2)
            assert _report(report) == [] and _ledger(ctx) == sorted([good, blob])
    finally:
        db.close()


def test_a_chunk_whose_rows_are_gone_is_passed_over(
    tmp_path: Path, ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunk that found none of its rows (deleted between the listing and the read) came back
    typed int64 by SQLite's driver, and the import stopped on it (ArrowNotImplementedError)."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        runs = [db.add_execution(fid, "alice", created_at=T0 + i, inputs={"which": str(i)}) for i in range(2)]
        gone = str(uuid.uuid4())
        keys = importer.Source.keys

        def listed_then_deleted(self: importer.Source) -> pa.Table:
            found = keys(self)
            extra = pa.table(
                {"id": pa.array([gone.encode()], pa.binary()), "created_at": [T0], "blob": [0]},
                schema=found.schema,
            )
            return pa.concat_tables([found, extra])

        monkeypatch.setattr(importer.Source, "keys", listed_then_deleted)
        with caplog.at_level(logging.WARNING, logger="flowhistory"):
            summary = importer.import_openwebui(ctx, db.url, chunk_rows=1)
        assert summary.finished and sorted(_stored(ctx)) == sorted(runs)
        assert "1 of the 1 runs listed were not there when read" in caplog.text
        empty = importer.Source(db.url)
        try:
            found = empty.runs([gone])
        finally:
            empty.close()
        assert found.num_rows == 0 and found.schema.field("id").type == pa.string()
    finally:
        db.close()


# -- 2. an id holding a NUL (or a quote) ---------------------------------------------------------


def test_an_id_with_a_nul_is_skipped_and_the_rest_imported(tmp_path: Path, ctx: Context) -> None:
    """The ids were written into the chunk's SQL: one holding a NUL ended the statement there
    ("unrecognized token"), and the import stopped at that chunk for good. Bound as a parameter,
    it is read, and skipped as an id that is not a UUID; so is one holding a quote."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        before = db.add_execution(fid, "alice", created_at=T0, inputs={"which": "before"})
        nul = str(uuid.uuid4()) + "\x00"
        quote = "o'brien'); DROP TABLE flow; --"
        for eid in (nul, quote):
            db.add_execution(fid, "alice", execution_id=eid, created_at=T0 + 1, inputs={"which": "odd"})
        after = db.add_execution(fid, "alice", created_at=T0 + 2, inputs={"which": "after"})
        report = tmp_path / "r.jsonl"
        summary = importer.import_openwebui(ctx, db.url, report=report)
        assert _stored(ctx) == {before: "before", after: "after"}
        assert (summary.runs_read, summary.runs_stored, summary.runs_skipped) == (4, 2, 2)
        lines = _report(report)
        assert sorted(lines, key=lambda x: x["id"]) == sorted(
            [{"id": eid, "action": "skipped", "reason": "id is not a UUID"} for eid in (nul, quote)],
            key=lambda x: x["id"],
        )
        again = importer.import_openwebui(ctx, db.url, report=report)
        assert again.finished and (again.runs_read, again.runs_stored) == (0, 0)
        assert _report(report) == lines and (again.total_read, again.total_in_source) == (4, 4)
    finally:
        db.close()


# -- 3. the very same id twice -------------------------------------------------------------------


def _without_primary_key(db: WebUIDb) -> None:
    """flow_execution as Open WebUI's, less its primary key (a hand-made copy, a restore)."""
    db.execute("DROP TABLE flow_execution")
    db.execute(
        "CREATE TABLE flow_execution (id VARCHAR NOT NULL, flow_id VARCHAR, user_id VARCHAR, status VARCHAR,"
        " inputs JSON, outputs JSON, node_results JSON, errors JSON, execution_time BIGINT, created_at BIGINT,"
        " meta JSON)"
    )


def test_the_very_same_id_twice_imports_the_first_and_reports_the_others(
    webui_db: WebUIDb, ctx: Context, tmp_path: Path
) -> None:
    """Both rows were skipped as "the same id as" each other, the report said one was imported,
    and the summary counted one "already there". Only the first (earliest created_at, at a tie
    the first saved) is imported; each other row is skipped with its own line; also with one
    run a chunk, and on a rerun."""
    _without_primary_key(webui_db)
    fid = _source(webui_db)
    twice = str(uuid.uuid4())
    other = webui_db.add_execution(fid, "alice", created_at=T0, inputs={"which": "other"})
    for at, which in ((T0 + 5, "later"), (T0 + 1, "first"), (T0 + 1, "tie, saved after")):
        webui_db.add_execution(fid, "alice", execution_id=twice, created_at=at, inputs={"which": which})
    report = tmp_path / "r.jsonl"
    summary = importer.import_openwebui(ctx, webui_db.url, report=report, chunk_rows=1)
    assert _stored(ctx) == {other: "other", twice: "first"}
    assert (summary.runs_read, summary.runs_stored, summary.runs_skipped, summary.runs_already_there) == (
        4,
        2,
        2,
        0,
    )
    assert (summary.total_read, summary.total_stored, summary.total_in_source) == (4, 2, 4)
    lines = _report(report)
    assert [x["action"] for x in lines] == ["skipped", "skipped"] and {x["id"] for x in lines} == {twice}
    first = f"3 rows of flow_execution have this id (the table lacks its primary key): only the first (the earliest created_at, at a tie the first saved) can be imported, created_at {T0 + 1};"
    assert sorted(x["reason"] for x in lines) == [
        f"{first} this is row 2 of them, created_at {T0 + 1}",
        f"{first} this is row 3 of them, created_at {T0 + 5}",
    ]
    again = importer.import_openwebui(ctx, webui_db.url, report=report)
    assert (again.runs_read, again.runs_stored) == (0, 0) and _report(report) == lines


def test_a_blob_copy_of_a_text_id_is_the_same_id(tmp_path: Path, ctx: Context) -> None:
    """A BLOB row and a TEXT row with one UUID's text are one id, as Open WebUI mode reads them:
    the first imported, the other skipped as a copy, never both stored nor both dropped."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    _without_primary_key(db)
    try:
        fid = _source(db)
        eid = str(uuid.uuid4())
        db.add_execution(fid, "alice", execution_id=eid, created_at=T0 + 1, inputs={"which": "text"})
        db.execute(
            "INSERT INTO flow_execution (id, flow_id, user_id, status, inputs, execution_time, created_at, meta)"
            " VALUES (CAST(? AS BLOB), ?, 'alice', 'success', ?, 5, ?, '{}')",
            (eid, fid, json.dumps({"which": "blob"}), T0),
        )
        report = tmp_path / "r.jsonl"
        summary = importer.import_openwebui(ctx, db.url, report=report)
        assert _stored(ctx) == {eid: "blob"}  # the earlier one
        assert (summary.runs_stored, summary.runs_skipped) == (1, 1)
        assert [(x["id"], x["action"]) for x in _report(report)] == [(eid, "skipped")]
    finally:
        db.close()


# -- 4. the source named another way ---------------------------------------------------------------


def test_the_report_and_counts_follow_the_file_however_named(tmp_path: Path, ctx: Context) -> None:
    """Keyed by the URL's text, `sqlite:///D//webui.db` after `sqlite:///D/webui.db` got an empty
    report and "0 of 2 stored so far" (nothing was imported twice: that part was right). Rows an
    earlier version kept under the URL as written count too."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        db.add_execution(fid, "alice", created_at=T0, inputs={"which": "plain"})
        odd = db.add_execution(fid, "alice", status="running", created_at=T0 + 1, inputs={"which": "odd"})
        first = tmp_path / "r1.jsonl"
        one = importer.import_openwebui(ctx, db.url, report=first)
        assert (one.total_stored, one.total_in_source) == (2, 2) and [x["id"] for x in _report(first)] == [
            odd
        ]
        (tmp_path / "link").symlink_to(tmp_path)
        for other in (f"sqlite:///{tmp_path}//webui.db", f"sqlite:///{tmp_path}/link/./webui.db"):
            second = tmp_path / "r2.jsonl"
            two = importer.import_openwebui(ctx, other, report=second)
            assert (two.runs_read, two.total_read, two.total_stored, two.total_in_source) == (0, 2, 2, 2)
            assert _report(second) == _report(first)
        # a store an earlier version wrote: its lines under the URL as written
        written = f"sqlite:///{tmp_path}//webui.db"
        ctx.store.write(
            lambda c: c.execute(
                "INSERT INTO openwebui_import_issues VALUES (?, 'x-earlier', 'skipped', 'an earlier line')",
                [written],
            )
        )
        three = tmp_path / "r3.jsonl"
        importer.import_openwebui(ctx, db.url, report=three)
        assert [x["id"] for x in _report(three)] == [odd, "x-earlier"]
    finally:
        db.close()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("postgresql://bob:secret@db.example:5432/webui", "postgresql://bob@db.example:5432/webui"),
        (
            "postgres://bob@db.example/webui?sslmode=require&password=x",
            "postgresql://bob@db.example:5432/webui",
        ),
        (
            "postgresql://bob@db.example:5433/webui?application_name=a",
            "postgresql://bob@db.example:5433/webui",
        ),
        ("postgresql:///webui?host=/run/postgresql&user=bob", "postgresql://bob@/run/postgresql:5432/webui"),
        ("postgresql://h1:5432,h2:5433/webui", "postgresql://h1:5432,h2:5433/webui"),  # as written
        # another schema is another Open WebUI: its report was filed with the first one's
        (
            "postgresql://bob:pw@db.example/webui?options=-csearch_path%3Dother",
            "postgresql://bob@db.example:5432/webui?options=-csearch_path%3Dother",
        ),
    ],
)
def test_a_postgresql_source_is_known_by_user_host_port_and_database(url: str, key: str) -> None:
    assert importer.source_key(url) == key


# -- 5. a second import of a file one is reading -------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TestClient]:
    """The server in process, an admin of its own ("root"); a 500 answers as one, not raised."""
    settings = Settings(db_path=tmp_path / "store" / "store.duckdb", webui_secret_key=SECRET, port=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        users.create_user(client.app.state.ctx, "root", role="admin")  # type: ignore[attr-defined]
        yield client


def test_an_import_knows_the_files_it_reads(tmp_path: Path, ctx: Context) -> None:
    """What the server's check of a source asks (`open_here`): a file an import has open is a
    SQLite source whose lock is SQLite's, not the store's; the store never is one."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    db.close()
    path = str(tmp_path / "webui.db")
    assert not importer.open_here(path)
    one, two = importer.Source(db.url), importer.Source(f"sqlite:///{tmp_path}//webui.db")
    assert importer.open_here(path) and importer.open_here(f"{tmp_path}/./webui.db")
    one.close()
    assert importer.open_here(path)  # the other still reads it
    two.close()
    assert not importer.open_here(path)
    assert not importer.open_here(str(ctx.settings.db_path)) and not importer.open_here("/tmp/\x00x")


def test_a_second_import_of_a_file_being_read_is_not_refused(served: TestClient, tmp_path: Path) -> None:
    """The server's check refused any file its process holds a POSIX lock on (meant for the
    store): while one import step read a SQLite file, another got a false 422 "not an Open WebUI
    database: no readable SQLite file there"."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    fid = _source(db)
    db.add_execution(fid, "alice", created_at=T0)
    db.close()
    reading = importer.Source(db.url)  # an import in flight: its SQLite holds the file's lock
    try:
        reading.keys()
        r = served.post("/api/v1/executions/import/openwebui", json={"from": db.url}, headers=bearer("root"))
        assert r.status_code == 200, r.text
        assert r.json()["runs_stored"] == 1
    finally:
        reading.close()


# -- 6. a flow's JSON column that is empty text ------------------------------------------------------


def test_a_flows_json_columns_holding_empty_text_are_reported(tmp_path: Path, ctx: Context) -> None:
    """Source.text reads NULL as '' too, so a flow whose nodes, edges or meta was '' was imported
    as [] / {} without a report line, where a run's payload that is '' is reported. NULL stays
    the plain default, unreported, as for runs; an access_control that is '' is not JSON: private."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        db.add_user("alice", "admin")
        empty = db.add_flow("alice", name="empty")
        db.execute(
            "UPDATE flow SET nodes = '', edges = '', meta = '', access_control = '' WHERE id = ?", (empty,)
        )
        null = db.add_flow("alice", name="null")
        db.execute(
            "UPDATE flow SET nodes = NULL, edges = NULL, meta = NULL, access_control = NULL WHERE id = ?",
            (null,),
        )
        db.add_group("g-empty", [])
        db.execute("""UPDATE "group" SET user_ids = '' WHERE id = 'g-empty'""")
        db.add_group("g-null", [])
        db.execute("""UPDATE "group" SET user_ids = NULL WHERE id = 'g-null'""")
        report = tmp_path / "r.jsonl"
        importer.import_openwebui(ctx, db.url, report=report)
        lines = {(x["id"], x["reason"]) for x in _report(report)}
        assert lines == {
            (empty, "flow nodes held empty text, which is not JSON: imported as [], as NULL is"),
            (empty, "flow edges held empty text, which is not JSON: imported as [], as NULL is"),
            (empty, "flow meta held empty text, which is not JSON: imported as {}, as NULL is"),
            (
                empty,
                "flow access_control held empty text, which is not JSON: imported as {} (private),"
                " as access_control that is not JSON is",
            ),
            (
                "g-empty",
                "group user_ids held empty text, which is not JSON: imported as no members, as NULL is",
            ),
        }
        stored: dict[str, Any] = {
            r[0]: r[1:]
            for r in ctx.store.read(
                lambda c: c.execute("SELECT id, nodes, edges, meta, access_control FROM flows").fetchall()
            )
        }
        assert stored[empty] == ("[]", "[]", "{}", "{}")  # private
        assert stored[null] == ("[]", "[]", "{}", None)  # public, as Open WebUI reads NULL
    finally:
        db.close()


# -- 7. an orphan run -------------------------------------------------------------------------------------


def test_an_orphan_is_judged_against_the_flows_flowhistory_has(tmp_path: Path, ctx: Context) -> None:
    """README's rule, made precise: a run is an orphan when its flow is in neither Open WebUI nor
    flowhistory once Open WebUI's flows are copied. A run of a flow Open WebUI deleted after an
    earlier import brought the flow in is imported under it."""
    db = WebUIDb.sqlite(tmp_path / "webui.db").create_schema()
    try:
        fid = _source(db)
        db.add_execution(fid, "alice", created_at=T0, inputs={"which": "before"})
        importer.import_openwebui(ctx, db.url)
        db.delete_flow(fid)  # SQLite leaves its runs
        kept = db.add_execution(fid, "alice", created_at=T0 + 1, inputs={"which": "kept"})
        orphan = db.add_execution("no-such-flow", "alice", created_at=T0 + 2, inputs={"which": "orphan"})
        report = tmp_path / "r.jsonl"
        summary = importer.import_openwebui(ctx, db.url, report=report)
        assert (summary.runs_stored, summary.runs_skipped) == (1, 1) and kept in _stored(ctx)
        assert _report(report) == [
            {
                "id": orphan,
                "action": "skipped",
                "reason": "orphan: flow no-such-flow is in neither Open WebUI nor flowhistory",
            }
        ]
    finally:
        db.close()
