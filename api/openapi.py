"""The OpenAPI document says which errors each operation can answer, and their JSON shape.

FastAPI documents only the 200 and its own 422 list form. The app also answers its own errors
(api/errors.py) with `{"detail": "<message>"}`, and some 422s in that string form. Declaring
them route by route would repeat the same table some ninety times, so they are derived here
once, from what each route depends on and takes:

- authenticated (depends on the caller): 401; and 403 for admins-only routes and routes that
  take an input (a flow, a rule, ... the caller may not have access to);
- takes a path parameter, a body, or a query parameter naming something (`*_id`): 404;
- takes a body: 413 (the body limit) and 415 (not of a type it reads: api/content_type.py);
- takes any input: 422, whose `detail` is FastAPI's list or a message;
- uses the store: 503;
- and whatever error status the route declares itself in `responses=` (409, 502, ...).
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from api.dependencies import admin_user, current_user, get_ctx
from api.errors import DESCRIPTIONS
from api.schemas.errors import ErrorOut, ValidationErrorOut

_REF = "#/components/schemas/{model}"
# FastAPI's own 422 models, replaced by ValidationErrorOut (which also allows a message)
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _params(dependant: Dependant, kind: str) -> Iterator[str]:
    yield from (p.name for p in getattr(dependant, kind))
    for dep in dependant.dependencies:
        yield from _params(dep, kind)


def error_statuses(route: Any) -> set[int]:
    """The error statuses this route can answer besides what it declares itself: every route a
    422 (a query parameter it does not read, api/query_params.py) and a 414 (a URL past the
    server's limit), a write a 507 (the store's disk full)."""
    calls = set(_calls(route.dependant))
    path = list(_params(route.dependant, "path_params"))
    query = list(_params(route.dependant, "query_params"))
    has_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    takes_input = bool(path or query or has_body)
    codes: set[int] = set()
    if current_user in calls:
        codes.add(401)
        if admin_user in calls or takes_input:
            codes.add(403)
    if path or has_body or any(name.endswith("_id") for name in query):
        codes.add(404)
    if has_body:
        codes |= {413, 415}
    codes |= {414, 422}
    if get_ctx in calls:
        codes.add(503)
        if set(route.methods or ()) & {"POST", "PUT", "PATCH", "DELETE"}:
            codes.add(507)
    return codes


def _response(code: int, given: dict[str, Any] | None) -> dict[str, Any]:
    description = (given or {}).get("description")
    if description in (None, "Validation Error", _phrase(code)):
        description = DESCRIPTIONS.get(code, _phrase(code))
    model = ValidationErrorOut if code == 422 else ErrorOut
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def document_errors(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Declare every operation's error answers in `document` (FastAPI's, changed in place)."""
    _, defs = models_json_schema(
        [(ErrorOut, "serialization"), (ValidationErrorOut, "serialization")], ref_template=_REF
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs["$defs"])
    for route in iter_route_contexts(routes):  # included routers are expanded lazily (FastAPI 0.165)
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():  # an APIRoute always has them
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for code in declared | error_statuses(route):
                responses[str(code)] = _response(code, responses.get(str(code)))
            operation["responses"] = dict(sorted(responses.items()))
    text = orjson.dumps(document["paths"]).decode()
    for name in _FASTAPI_422:
        if f'"{_REF.format(model=name)}"' not in text:
            schemas.pop(name, None)


# a bound a setting decides (`FLOWHISTORY_LIST_LIMIT_MAX`): marked where the parameter is
# declared, written in from the server's settings when the document is built
SETTING_MAXIMUM = "x-maximum-setting"


def maximum_from(setting: str) -> dict[str, Any]:
    """`Query(json_schema_extra=maximum_from("list_limit_max"))`: the document says the real cap
    (it said none, and a client sent `limit=501` as valid: a 422)."""
    return {SETTING_MAXIMUM: setting}


def setting_bounds(node: Any, settings: Any) -> None:
    if isinstance(node, list):
        for item in node:
            setting_bounds(item, settings)
    elif isinstance(node, dict):
        if isinstance(name := node.pop(SETTING_MAXIMUM, None), str):
            cap = getattr(settings, name)
            for branch in node.get("anyOf", [node]):
                if branch.get("type") == "integer":
                    branch["maximum"] = min(branch.get("maximum", cap), cap)
        for value in node.values():
            setting_bounds(value, settings)


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def standard_bounds(node: Any) -> None:
    """Bounds in JSON Schema's words. pydantic writes its own (`gt`, `le`) where a bound sits
    beside a validator (our `Count`, `Number`, durations) or on an optional field: 29 places no
    tool read (schemathesis sent `payload_ttl_days: 0` as valid)."""
    if isinstance(node, list):
        for item in node:
            standard_bounds(item)
    elif isinstance(node, dict):
        # a schema object (a `properties` map holds schemas, not numbers); a bound beside an
        # `anyOf` (a duration: seconds or "1h") holds for its numbers only, as JSON Schema reads it
        if "type" in node or "anyOf" in node:
            for ours, theirs in _BOUNDS.items():
                if isinstance(bound := node.get(ours), int | float):
                    del node[ours]
                    tighter = max if ours in ("gt", "ge") else min
                    node[theirs] = tighter(node[theirs], bound) if theirs in node else bound
        for value in node.values():
            standard_bounds(value)


def install(app: FastAPI) -> None:
    """Make `app.openapi()` answer the document with the errors declared (built once, cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            standard_bounds(document)
            setting_bounds(document, app.state.settings)
            document_errors(document, app.routes)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
