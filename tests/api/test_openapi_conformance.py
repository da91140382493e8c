"""Every answer matches the OpenAPI document: documented status, content type and body schema.

Schemathesis generates requests for every operation in /openapi.json, valid and invalid ones,
and sends each to the ASGI app in-process on a seeded store three times: as an admin, as a plain
user and without credentials. Path ids are the seeded ones half of the time, so success answers
(with their timestamps) are checked as well as the 404s.

Bounded on purpose (a few examples per operation, derandomized, no example database): this is a
conformance sweep that runs in `make test`, not a fuzzing campaign. Hypothesis drives the
strategies directly: schemathesis' fixture-based pytest loader does not run on pytest 9.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics import annotations, flows, ingest, users
from analytics.access import Viewer
from analytics.alerts import service as alerts
from analytics.annotations import AnnotationUpdate
from analytics.config import Settings
from analytics.context import Context
from analytics.retention import apply, policies
from analytics.retention.policies import Policy
from api.app import create_app
from tests.factories import SECRET, bearer, make_execution

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# per operation and generation mode, each sent once per caller; raise it for a deeper sweep by hand
EXAMPLES = int(os.environ.get("FLOWHISTORY_CONFORMANCE_EXAMPLES", "5"))
ADMIN = "conformance-admin"
USER = "conformance-user"
CALLERS = {"admin": bearer(ADMIN), "user": bearer(USER), "anonymous": {}}


def _settings(folder: Path) -> Settings:
    return Settings(
        db_path=folder / "store.duckdb",
        webui_secret_key=SECRET,
        admin_user_ids=[ADMIN],
        scheduler_enabled=False,
        alert_ingest_trigger=False,
    )


# The document is the app's own; building the app opens nothing (the store opens in the lifespan).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(_settings(Path("unused"))).openapi(),
    config=schemathesis.Config.from_dict({"suppress-health-check": ["all"]}),
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _seed(ctx: Context) -> list[dict[str, str]]:
    """Flows, runs, an annotation, policies, a retention pass, a rule, a channel, a key, a group.

    Answers path parameter sets made of real ids (each execution with its own flow)."""
    admin = Viewer(ADMIN, "admin")
    users.create_user(ctx, USER, role="user", name="User", email="user@example.com")
    public = flows.create_flow(
        ctx, Viewer(USER), name="public", nodes=[{"id": "n"}], edges=[], access_control=None
    )
    private = flows.create_flow(ctx, admin, name="private", nodes=[], edges=[], access_control={})
    runs: list[tuple[str, str]] = []
    for flow_id in (public.id, private.id):
        batch = [make_execution(flow_id, status=s, user_id=USER) for s in ("success", "error", "success")]
        runs += [(flow_id, r.id) for r in ingest.save_executions(ctx, admin, batch) if r.id is not None]
    flow_id, execution_id = runs[0]
    annotations.set_annotation(ctx, admin, flow_id, execution_id, AnnotationUpdate(note="seen", tags=["x"]))
    policies.set_policy(ctx, admin, Policy(max_age_days=365.0, keep_last=100))
    policies.set_policy(ctx, admin, Policy(keep_last=10), public.id)
    apply.run_retention(ctx, trigger="api")
    # A closed port on the loopback: a test notification fails at once and goes nowhere else.
    channel = alerts.create_channel(
        ctx, admin, alerts.ChannelCreate(name="hook", url="http://127.0.0.1:9/hook", secret="s" * 16)
    )
    rule = alerts.create_rule(
        ctx,
        admin,
        alerts.RuleCreate(
            name="failures", metric="failure_rate", flow_id=public.id, window=3600, threshold=0.5
        ),
    )
    _, key = users.create_api_key(ctx, USER, name="conformance")
    group = users.create_group(ctx, "readers", user_ids=[USER])
    return [
        {
            "flow_id": f,
            "execution_id": e,
            "user_id": USER,
            "rule_id": rule.id,
            "channel_id": channel.id,
            "key_id": key.id,
            "group_id": group.id,
            "name": job,
        }
        for (f, e), job in zip(runs, itertools.cycle(["retention", "rollups", "alerts"]), strict=False)
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, list[dict[str, str]]]]:
    """The app with its lifespan running, as schemathesis' ASGI transport reaches it."""
    app = create_app(_settings(tmp_path_factory.mktemp("conformance")))
    with schemathesis_asgi.get_client(app):  # starts the lifespan, kept until shutdown_lifespans
        pass
    try:
        yield app, _seed(app.state.ctx)
    finally:
        schemathesis_asgi.shutdown_lifespans()


def _cases(operation: schemathesis.APIOperation, seeded: list[dict[str, str]]) -> st.SearchStrategy[Any]:
    names = {p.name for p in operation.path_parameters}
    real = [{k: v for k, v in ids.items() if k in names} for ids in seeded]
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if names:
            strategies.append(
                st.sampled_from(real).flatmap(
                    lambda ids, m=mode: operation.as_strategy(m, path_parameters=ids)
                )
            )
    return st.one_of(strategies)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_answers_match_the_openapi(
    operation: schemathesis.APIOperation, served: tuple[FastAPI, list[dict[str, str]]]
) -> None:
    app, seeded = served

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases(operation, seeded))
    def every_caller(case: schemathesis.Case) -> None:
        for caller, headers in CALLERS.items():
            try:
                case.call_and_validate(app=app, headers=headers, checks=CHECKS)
            except Exception as exc:
                exc.add_note(f"caller: {caller}")
                raise

    every_caller()


def test_every_operation_is_swept() -> None:
    """The sweep is over the whole document: a route added later is covered without a change here."""
    document = SCHEMA.raw_schema
    declared = sum(1 for item in document["paths"].values() for m in item if m != "parameters")
    assert len(OPERATIONS) == declared > 80
