"""Every answer matches the OpenAPI document: documented status, content type and body schema.

Schemathesis generates requests for every operation in /openapi.json, valid and invalid ones,
and sends each to the ASGI app in-process on a seeded store three times: as an admin, as a plain
user and without credentials. Path ids are often real seeded ones, and each operation also gets
an explicit valid request, so every operation's success answer (with its timestamps) is checked,
not only its 404s and 422s. Operations that delete or change what their path names get ids of
their own.

Bounded on purpose (a few examples per operation, derandomized, no example database): this is a
conformance sweep that runs in `make test`, not a fuzzing campaign. Hypothesis drives the
strategies directly: schemathesis' fixture-based pytest loader does not run on pytest 9.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics import exports
from analytics.access import users
from analytics.access.permissions import Viewer
from analytics.alerts import service as alerts
from analytics.alerts.silences import SilenceCreate
from analytics.core.config import Settings
from analytics.core.context import Context
from analytics.flows import registry as flows
from analytics.history import annotations, ingest
from analytics.history.annotations import AnnotationUpdate
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
        alert_webhook_allow=["127.0.0.1"],  # the seeded channel's (closed) port on loopback
    )


# The document is the app's own; building the app opens nothing (the store opens in the lifespan).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(_settings(Path("unused"))).openapi(),
    config=schemathesis.Config.from_dict({"suppress-health-check": ["all"]}),
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _ids(ctx: Context, tag: str) -> list[dict[str, str]]:
    """New flows with runs (one annotated), a rule, a channel, an API key, a group and a user.

    Answers path parameter sets made of these real ids, each execution with its own flow."""
    admin = Viewer(ADMIN, "admin")
    spare = f"spare-{tag}"
    users.create_user(ctx, spare, role="user")
    public = flows.create_flow(
        ctx, Viewer(USER), name=f"public {tag}", nodes=[{"id": "n"}], edges=[], access_control=None
    )
    private = flows.create_flow(ctx, admin, name=f"private {tag}", nodes=[], edges=[], access_control={})
    runs: list[tuple[str, str]] = []
    for flow_id in (public.id, private.id):
        batch = [make_execution(flow_id, status=s, user_id=USER) for s in ("success", "error")]
        saved = [r.id for r in ingest.save_executions(ctx, admin, batch) if r.id is not None]
        replay = make_execution(flow_id, user_id=USER, replay_of=saved[0], text="Hello")
        saved += [r.id for r in ingest.save_executions(ctx, admin, [replay]) if r.id is not None]
        runs += [(flow_id, run_id) for run_id in saved]
    flow_id, execution_id = runs[0]
    annotations.set_annotation(ctx, admin, flow_id, execution_id, AnnotationUpdate(note="seen", tags=["x"]))
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
    silence = alerts.create_silence(
        ctx,
        admin,
        SilenceCreate(rule_id=rule.id, duration=3600, comment="seeded"),  # type: ignore[arg-type]
    )
    _, key = users.create_api_key(ctx, spare, name="conformance")
    group = users.create_group(ctx, f"readers {tag}", user_ids=[USER, spare])
    return [
        {
            "flow_id": f,
            "execution_id": e,
            "user_id": spare,
            "rule_id": rule.id,
            "channel_id": channel.id,
            "silence_id": silence.id,
            "key_id": key.id,
            "group_id": group.id,
            "name": job,
        }
        for (f, e), job in zip(runs, itertools.cycle(["retention", "rollups", "alerts"]), strict=False)
    ]


def _seed(ctx: Context) -> list[dict[str, str]]:
    """The user, policies, a retention pass (for the run log), an export, and ids to share."""
    admin = Viewer(ADMIN, "admin")
    users.create_user(ctx, USER, role="user", name="User", email="user@example.com")
    shared = _ids(ctx, "shared")
    policies.set_policy(ctx, admin, Policy(max_age_days=365.0, keep_last=100))
    policies.set_policy(ctx, admin, Policy(keep_last=10), shared[0]["flow_id"])
    apply.run_retention(ctx, trigger="api")
    exports.run_export(ctx)  # for the SQL console, and an export status with its cycles
    return shared


RANGE = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
# Valid requests random data rarely makes (related fields, ids in bodies), so their success
# answers are checked too; each gets the ids of one seeded execution.
EXPLICIT: dict[str, Callable[[dict[str, str]], list[dict[str, Any]]]] = {
    "POST /api/v1/flows/{flow_id}/executions": lambda ids: [
        {"path_parameters": ids, "body": make_execution(ids["flow_id"], status="error")}
    ],
    "POST /api/v1/executions/batch": lambda ids: [
        {
            "body": [make_execution(ids["flow_id"]), {"flow_id": ids["flow_id"]}],
            "media_type": "application/json",
        }
    ],
    "POST /api/v1/executions/search": lambda ids: [{"body": {"limit": 2, "include_payloads": True}}],
    "GET /api/v1/flows/{flow_id}/executions/list": lambda ids: [
        {"path_parameters": ids, "query": {"limit": 1}}
    ],
    "POST /api/v1/metrics": lambda ids: [
        {"body": {**RANGE, "measures": ["runs", "p95_duration", "cost"], "group_by": "status"}}
    ],
    "GET /api/v1/flows/{flow_id}/trend": lambda ids: [
        {"path_parameters": ids, "query": {**RANGE, "measures": ["runs", "failure_rate"]}}
    ],
    "POST /api/v1/executions/compare": lambda ids: [
        {"body": {"ids": [ids["execution_id"], ids["other_execution_id"]]}}
    ],
    "PUT /api/v1/flows/{flow_id}/executions/{execution_id}/annotation": lambda ids: [
        {"path_parameters": ids, "body": {"note": "checked", "tags": ["a"], "rating": 1}}
    ],
    "POST /api/v1/prices/recompute": lambda ids: [{"query": RANGE}],
    "GET /api/v1/cost": lambda ids: [{"query": {**RANGE, "group_by": "model"}}],
    "POST /api/v1/alerts/rules": lambda ids: [
        {
            "body": {
                "name": "slow",
                "metric": "p95_duration",
                "flow_id": ids["flow_id"],
                "window": "1h",
                "threshold": 1000,
                "channel_ids": [ids["channel_id"]],
            }
        }
    ],
    "POST /api/v1/alerts/silences": lambda ids: [
        {"body": {"rule_id": ids["rule_id"], "duration": "2h", "comment": "deploy"}},
        {"body": {"flow_id": ids["flow_id"], "ends_at": "2100-01-01T00:00:00Z", "comment": "far"}},
    ],
    "PATCH /api/v1/alerts/rules/{rule_id}": lambda ids: [
        {"path_parameters": ids, "body": {"threshold": 0.9}}
    ],
    "POST /api/v1/sql": lambda ids: [
        {"body": {"sql": "SELECT 1 AS one, now() AS at"}},
        {"body": {"sql": "SELECT 1 AS one", "format": "arrow"}},
    ],
    "PUT /api/v1/flows/{flow_id}/retention/policy": lambda ids: [
        {"path_parameters": ids, "body": {"keep_last": 50}}
    ],
    "POST /api/v1/flows/{flow_id}/retention/dry-run": lambda ids: [
        {"path_parameters": ids, "body": {"now": "2030-01-01T02:00:00+02:00"}}
    ],
    "POST /api/v1/retention/restore": lambda ids: [{"body": RANGE}],
}


def _plain(ids: dict[str, str]) -> list[dict[str, Any]]:
    """Real path ids and nothing else: a valid request wherever nothing else is required."""
    return [{"path_parameters": ids}]


def _needs_more(operation: schemathesis.APIOperation) -> bool:
    raw = operation.definition.raw
    required = [p for p in raw.get("parameters", []) if p.get("required") and p["in"] != "path"]
    return bool(required) or bool(raw.get("requestBody", {}).get("required"))


def _destroys(operation: schemathesis.APIOperation) -> bool:
    """Operations that may delete or change what their path names get ids of their own, so the
    operations after them still find the shared ones."""
    method, path = operation.method.upper(), operation.path
    return (
        method in ("DELETE", "PATCH", "PUT") or path.endswith("/cleanup") or path == "/api/v1/flows/{flow_id}"
    )


def _running(app: FastAPI) -> Context:
    """Start the app's lifespan if it is not running: schemathesis' pytest plugin ends it after
    each test (the store stays on disk, so what was seeded is still there)."""
    with schemathesis_asgi.get_client(app):
        pass
    return app.state.ctx


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, list[dict[str, str]]]]:
    """The app on a seeded store, reached in-process through schemathesis' ASGI transport."""
    app = create_app(_settings(tmp_path_factory.mktemp("conformance")))
    try:
        yield app, _seed(_running(app))
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
    app, shared = served
    ctx = _running(app)
    seeded = _ids(ctx, str(OPERATIONS.index(operation))) if _destroys(operation) else shared

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

    ids = {**seeded[0], "other_execution_id": seeded[1]["execution_id"]}
    names = {p.name for p in operation.path_parameters}
    explicit = EXPLICIT.get(operation.label) or (None if _needs_more(operation) else _plain)
    for kwargs in explicit(ids) if explicit else []:
        path = {k: v for k, v in kwargs.pop("path_parameters", {}).items() if k in names}
        every_caller = example(case=operation.Case(path_parameters=path or None, **kwargs))(every_caller)
    every_caller()


def test_every_operation_is_swept() -> None:
    """The sweep is over the whole document: a route added later is covered without a change here."""
    document = SCHEMA.raw_schema
    declared = sum(1 for item in document["paths"].values() for m in item if m != "parameters")
    assert len(OPERATIONS) == declared > 80
    assert set(EXPLICIT) <= {op.label for op in OPERATIONS}


def test_bounds_are_in_json_schemas_words() -> None:
    """pydantic wrote `gt`/`le` beside a validator or on an optional field, which no tool reads
    (schemathesis sent `payload_ttl_days: 0` as valid): they are exclusiveMinimum, maximum ..."""

    def raw_bounds(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if "type" in node and {"gt", "ge", "lt", "le"} & set(node):
                yield node
            for value in node.values():
                yield from raw_bounds(value)
        elif isinstance(node, list):
            for item in node:
                yield from raw_bounds(item)

    document = SCHEMA.raw_schema
    assert list(raw_bounds(document)) == []
    schemas = document["components"]["schemas"]
    ttl = schemas["PolicyIn"]["properties"]["payload_ttl_days"]["anyOf"][0]
    assert (ttl["exclusiveMinimum"], ttl["maximum"]) == (0, 365000)
    assert schemas["RuleCreate"]["properties"]["min_runs"]["maximum"] == 2**53
    assert schemas["MetricsQuery"]["properties"]["max_groups"]["maximum"] == 100  # the tighter of two


@pytest.mark.parametrize("cap", [500, 37])
def test_a_limit_a_setting_caps_is_declared_with_that_cap(cap: int) -> None:
    """`/executions/list` and `/replays` declared no maximum: `limit=501` was valid by the
    document and a 422 from the server (its cap is FLOWHISTORY_LIST_LIMIT_MAX)."""
    from analytics.core.config import Settings
    from api.app import create_app

    document = create_app(Settings(db_path=":memory:", list_limit_max=cap, list_limit_default=cap)).openapi()
    paths = document["paths"]
    for path in (
        "/api/v1/flows/{flow_id}/executions/list",
        "/api/v1/flows/{flow_id}/executions/{execution_id}/replays",
    ):
        (limit,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "limit"]
        assert limit["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": cap}
    assert "x-maximum-setting" not in str(document)


def test_every_error_answer_is_declared_with_the_shared_models() -> None:
    refs = {"422": "#/components/schemas/ValidationErrorOut"}
    for operation in OPERATIONS:
        responses = operation.definition.raw["responses"]
        errors = {code: r for code, r in responses.items() if code >= "400"}
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": refs.get(code, "#/components/schemas/ErrorOut")}, (
                operation.label,
                code,
            )
        if operation.path not in ("/health", "/ready"):  # no auth: liveness and readiness
            assert {"401", "503"} <= set(errors), operation.label
        # every route refuses an unknown query parameter and a URL past the parser's limit
        assert {"414", "422"} <= set(errors), operation.label
        writes = operation.method.upper() in ("POST", "PUT", "PATCH", "DELETE") and "503" in errors
        assert ("507" in errors) == writes, operation.label  # a full store disk refuses writes
    assert "HTTPValidationError" not in SCHEMA.raw_schema["components"]["schemas"]


def test_the_apps_own_errors_and_fastapis_match_the_document(
    served: tuple[FastAPI, list[dict[str, str]]],
) -> None:
    """Each kind of error answer once, on purpose: the issue's `{"cursor": ""}` is a 422 whose
    detail is a message (the app's), `{"limit": 0}` one whose detail is a list (FastAPI's)."""
    app, shared = served
    _running(app)
    search = SCHEMA["/api/v1/executions/search"]["POST"]
    flow = SCHEMA["/api/v1/flows/{flow_id}"]["GET"]
    add_user = SCHEMA["/api/v1/users"]["POST"]
    cases = [
        (search.Case(body={"cursor": ""}), "admin", 422, str),
        (search.Case(body={"limit": 0}), "admin", 422, list),
        (search.Case(body={}), "anonymous", 401, str),
        (flow.Case(path_parameters={"flow_id": "no-such-flow"}), "admin", 404, str),
        (flow.Case(path_parameters={"flow_id": shared[3]["flow_id"]}), "user", 403, str),
        (add_user.Case(body={"id": USER}), "admin", 409, str),
        (add_user.Case(body={"id": "someone"}), "user", 403, str),
    ]
    for case, caller, status, detail in cases:
        response = case.call_and_validate(app=app, headers=CALLERS[caller], checks=CHECKS)
        assert response.status_code == status, (case.operation.label, caller, response.text)
        assert isinstance(response.json()["detail"], detail)
