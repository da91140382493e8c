"""Versioned migrations, library level: upgrade, current, downgrade, and what survives them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.core import migrations
from analytics.core.config import Settings
from analytics.core.context import open_context
from analytics.core.errors import InvalidInput
from analytics.core.store import Store
from analytics.flows import registry as flows
from analytics.history import ingest
from tests.factories import SECRET

REGISTRY = ("users", "groups", "group_members", "api_keys", "flows", "flow_versions")
DATA_ONLY = {12}  # migrations that mend rows, not the schema (each has its own test below)


def tables(store: Store) -> set[str]:
    rows = store.read(
        lambda c: c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    )
    return {r[0] for r in rows} - {"schema_migrations"}


def ledger(store: Store) -> list[tuple[int, str]]:
    return store.read(
        lambda c: c.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def test_upgrade_from_empty_to_head(store: Store) -> None:
    every = migrations.all_migrations()
    # increasing and unique; a number may be missing while another branch holds it (8: silences)
    versions = [m.version for m in every]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert migrations.head() == every[-1].version
    assert migrations.current(store) == 0
    assert tables(store) == set()

    applied = migrations.upgrade(store)
    assert [m.version for m in applied] == [m.version for m in every]
    assert migrations.current(store) == migrations.head()
    assert ledger(store) == [(m.version, m.name) for m in every]
    assert tables(store) >= {*REGISTRY, "executions", "execution_nodes"}

    assert migrations.upgrade(store) == []  # at head: nothing to do
    assert migrations.current(store) == migrations.head()


def test_upgrade_to_a_target_stops_there(store: Store) -> None:
    assert [m.version for m in migrations.upgrade(store, 1)] == [1]
    assert migrations.current(store) == 1
    assert tables(store) == set(REGISTRY)
    assert migrations.upgrade(store, 1) == []
    migrations.upgrade(store)
    assert migrations.current(store) == migrations.head()


def columns(store: Store) -> set[tuple[str, str]]:
    rows = store.read(
        lambda c: c.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
            " AND table_name <> 'schema_migrations'"
        ).fetchall()
    )
    return {(r[0], r[1]) for r in rows}


def nullable(store: Store) -> set[tuple[str, str]]:
    rows = store.read(
        lambda c: c.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
            " AND is_nullable = 'YES'"
        ).fetchall()
    )
    return {(r[0], r[1]) for r in rows}


def test_downgrade_one_step_at_a_time_to_zero_and_back(store: Store) -> None:
    created: dict[int, set[tuple[str, str]]] = {}
    loosened: dict[int, set[tuple[str, str]]] = {}
    for m in migrations.all_migrations():  # up one at a time, noting the columns each adds
        before, was_nullable = columns(store), nullable(store)
        assert [x.version for x in migrations.upgrade(store, m.version)] == [m.version]
        created[m.version] = columns(store) - before
        loosened[m.version] = nullable(store) - was_nullable - created[m.version]
        changed = created[m.version] or loosened[m.version] or m.version in DATA_ONLY
        assert changed, f"migration {m.version} changed nothing"
    assert loosened[10] == {("trend_rollups", "cost")}  # an unknown cost is null, not 0
    assert {t for t, _ in created[2]} == {"executions", "execution_nodes"}
    assert {t for t, _ in created[3]} == {"prices", "execution_annotations"}
    assert created[9] == {("alert_channels", "kind"), ("alert_channels", "config")}
    at_head = tables(store)

    for m in reversed(migrations.all_migrations()):
        before = columns(store)
        below = [x.version for x in migrations.all_migrations() if x.version < m.version]
        assert [x.version for x in migrations.downgrade(store)] == [m.version]
        assert migrations.current(store) == (below[-1] if below else 0)
        assert before - columns(store) == created[m.version]
        assert not loosened[m.version] & nullable(store)
        assert [v for v, _ in ledger(store)] == below
    assert migrations.current(store) == 0
    assert tables(store) == set()
    assert migrations.downgrade(store) == []  # nothing left to undo
    assert migrations.current(store) == 0

    migrations.upgrade(store)
    assert migrations.current(store) == migrations.head()
    assert tables(store) == at_head


def test_downgrade_many_steps_at_once(store: Store) -> None:
    migrations.upgrade(store)
    undone = migrations.downgrade(store, steps=100)
    assert [m.version for m in undone] == [m.version for m in reversed(migrations.all_migrations())]
    assert migrations.current(store) == 0
    assert tables(store) == set()


def test_registry_data_survives_a_downgrade_and_upgrade_of_executions(db: Path) -> None:
    settings = Settings(db_path=db, webui_secret_key=SECRET)
    with open_context(settings) as ctx:
        users.create_user(ctx, "alice", role="admin", name="Alice")
        users.create_user(ctx, "bob")
        group = users.create_group(ctx, "team", user_ids=["bob"])
        key, _ = users.create_api_key(ctx, "bob", name="ci")
        flow = flows.create_flow(
            ctx,
            Viewer("alice", "admin"),
            name="f",
            nodes=[{"id": "model_1"}],
            edges=[],
            access_control={"read": {"group_ids": [group.id], "user_ids": []}},
        )
        before = {
            t: ctx.store.read(lambda c, t=t: c.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall())
            for t in REGISTRY
        }
    assert all(before.values())

    with Store(db) as store:
        above_registry = [m.name for m in reversed(migrations.all_migrations()) if m.version > 1]
        assert above_registry[-2:] == ["analytics", "executions"]
        assert [m.name for m in migrations.downgrade(store, len(above_registry))] == above_registry
        assert "executions" not in tables(store)
        migrations.upgrade(store)
        assert migrations.current(store) == migrations.head()
        after = {
            t: store.read(lambda c, t=t: c.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall())
            for t in REGISTRY
        }
        assert after == before
        assert store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()) == [(0,)]

    with open_context(settings) as ctx:  # and the directory built from it still works
        assert ctx.directory.user("alice").role == "admin"  # type: ignore[union-attr]
        assert ctx.directory.user_for_key(users.hash_key(key)) == "bob"
        assert ctx.directory.groups_of("bob") == {group.id}
        assert ctx.directory.flow(flow.id).owner_id == "alice"  # type: ignore[union-attr]


@pytest.mark.parametrize("target", [-1, 10_000])
def test_upgrade_to_an_unknown_version_raises(store: Store, target: int) -> None:
    migrations.upgrade(store, 1)
    with pytest.raises(InvalidInput) as info:
        migrations.upgrade(store, target)
    assert info.value.field == "target"
    assert migrations.current(store) == 1


@pytest.mark.parametrize("steps", [0, -1])
def test_downgrade_needs_at_least_one_step(store: Store, steps: int) -> None:
    migrations.upgrade(store)
    with pytest.raises(InvalidInput):
        migrations.downgrade(store, steps)
    assert migrations.current(store) == migrations.head()
    assert "executions" in tables(store)


def test_a_failing_migration_leaves_the_previous_version(store: Store) -> None:
    migrations.upgrade(store, 1)
    # the second migration creates executions, then the view execution_nodes: make the second fail
    store.write(lambda c: c.execute("CREATE TABLE execution_nodes (x INTEGER)"))
    with pytest.raises(duckdb.CatalogException):
        migrations.upgrade(store)
    assert migrations.current(store) == 1
    assert "executions" not in tables(store), "the failed migration was applied in part"
    assert [v for v, _ in ledger(store)] == [1]


def test_a_duckdb_file_of_someone_elses_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """A mistyped --db naming another DuckDB database: `users list` added flowhistory's tables
    to it, and a 64 MiB reserve file beside it. An empty DuckDB file still becomes a store."""
    from analytics.core.errors import NotAStore

    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as c:
        c.execute("CREATE TABLE t (x INTEGER)")
    for read_only in (False, True):
        with pytest.raises(NotAStore, match="not a flowhistory store"):
            open_context(Settings(db_path=other, disk_reserve=1024**2), read_only=read_only)
    with duckdb.connect(str(other)) as c:
        assert c.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("t",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.duckdb"]
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with open_context(Settings(db_path=empty, disk_reserve=1024**2)) as ctx:
        assert ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchall()) == [(0,)]


def test_a_run_without_a_model_node_costs_0_after_migration_12(db: Path) -> None:
    """Stored before it with a null cost ("—" in the history, $0 on the cost screen): 0 after,
    null again below it; a run with a model no price matches stays unknown either way."""
    settings = Settings(db_path=db, webui_secret_key=SECRET)
    with open_context(settings) as ctx:
        admin = Viewer("alice", "admin")
        users.create_user(ctx, "alice", role="admin")
        flow = flows.create_flow(ctx, admin, name="f", nodes=[], edges=[])
        for run_id, nodes in (
            ("no-model", {"input_1": {"text": "hi"}}),
            ("unpriced", {"m": {"model": "no-such-model", "usage": {"prompt_tokens": 5}}}),
        ):
            ingest.save(
                ctx,
                admin,
                ingest.ExecutionCreate(
                    flow_id=flow.id,
                    status="success",
                    execution_time=1,
                    node_results=nodes,
                    meta={"k": run_id},
                ),
                flow_id=flow.id,
            )
        ctx.store.write(lambda c: c.execute("UPDATE executions SET cost = NULL"))  # as stored before
    with Store(db) as store:

        def costs() -> dict[str, float | None]:
            rows = store.read(lambda c: c.execute("SELECT meta->>'k', cost FROM executions").fetchall())
            return dict(rows)

        migrations.downgrade(store)
        assert migrations.current(store) == 11
        migrations.upgrade(store)
        assert costs() == {"no-model": 0.0, "unpriced": None}
        dirty = store.read(lambda c: c.execute("SELECT flow_id FROM rollup_dirty").fetchall())
        assert dirty == [(flow.id,)]  # its day's rollup is read again from the runs
        migrations.downgrade(store)
        assert costs() == {"no-model": None, "unpriced": None}
