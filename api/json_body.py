"""JSON in and out with orjson, for every route.

orjson is faster than the stdlib's json and stricter: it refuses lone UTF-16 surrogates
("\\ud800"), which json lets through to fail later as a 500 in pydantic's error rendering or in
DuckDB. `JsonRoute` makes FastAPI's own body parsing use it; a body that is not JSON, not
UTF-8 or nested past orjson's depth limit is a 422 in FastAPI's list form.

Runs and flows are read by `PayloadRoute` and `read_json(mend=True)`: there a lone surrogate
escape is read as U+FFFD (analytics/core/json_text.py: the editor splits an emoji in halves when
it spreads a text result). Names and ids elsewhere stay strict.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from analytics.core.json_text import loads_mended
from analytics.core.jsonio import dumps
from api import content_type, query_params
from api.dependencies import flow_first_of

M = TypeVar("M", bound=BaseModel)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json")


def decode_error(
    exc: orjson.JSONDecodeError, *, prefix: tuple[str, ...] = ("body",)
) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": (*prefix, exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
        ]
    )


async def read_json(request: Request, *, mend: bool = False) -> Any:
    """The body as JSON; `mend`: lone surrogate escapes read as U+FFFD (a run's or flow's body)."""
    body = await request.body()
    try:
        return loads_mended(body) if mend else orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise decode_error(exc) from exc


def validation_error(exc: ValidationError, *, prefix: tuple[str, ...] = ("body",)) -> RequestValidationError:
    errors = exc.errors(include_url=False)
    for err in errors:
        err["loc"] = (*prefix, *err["loc"])
        if "ctx" in err:  # may hold exception objects, which are not JSON
            err["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
    return RequestValidationError(errors)


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def validate_query(model: type[M], params: dict[str, Any]) -> M:
    """Query parameters read into a model; its errors are 422s located in the query."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_error(exc, prefix=("query",)) from exc


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra documenting a body that the route reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class _PayloadRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_mended(await self.body())
        return self._json


class JsonRoute(APIRoute):
    """FastAPI calls `request.json()` to parse bodies; this request parses with orjson
    (whose JSONDecodeError is the stdlib's, so FastAPI's 422 handling applies unchanged).
    A body of a type the route does not read is refused first (415, api/content_type.py), then
    a query parameter it does not read (422, api/query_params.py)."""

    request_class: type[Request] = _JsonRequest

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        accepted = content_type.accepted_types(self)
        reads = query_params.declared(self.dependant)
        lists = query_params.repeatable(self.dependant)
        needs_credential = query_params.authenticates(self.dependant)
        request_class = self.request_class

        async def with_orjson(request: Request) -> Response:
            try:
                content_type.check(request, accepted)
            except HTTPException:
                if needs_credential:  # the 401 every route answers first, not the 415
                    await query_params.authenticate(request)
                raise
            await query_params.check(request, reads, lists, authenticate_first=needs_credential)
            try:
                return await handler(request_class(request.scope, request.receive))
            except RequestValidationError as exc:
                # FastAPI parses the body before it asks for the credential: a caller without
                # one got the 422 of a body that is not JSON where everything else is the 401,
                # and then the flow's 404 and 403
                if needs_credential and any(e.get("type") == "json_invalid" for e in exc.errors()):
                    await flow_first_of(request)
                raise

        return with_orjson


class PayloadRoute(JsonRoute):
    """JsonRoute for bodies holding what the editor wrote (flows): lone surrogate escapes are
    read as U+FFFD."""

    request_class = _PayloadRequest
