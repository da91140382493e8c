"""A query parameter the route does not read is a 422 naming it, not ignored.

Why: `GET .../executions/stats?from=2030-01-01` (the route reads `start`) answered the all-time
totals as if they were the year's, and a misspelled filter looked applied. Search already
refuses an unknown filter field in its body; the query string now says the same. A parameter
that takes one value and is given twice is refused too, rather than the last one read. The names a
route reads are its declared query parameters and those of its dependencies, by alias. A route
that needs a credential checks it first: a caller without one gets the 401 every route answers,
not the list of parameters the route reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel
from starlette.requests import Request

from api.dependencies import current_user


def _parameters(dependant: Any) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    """Each query parameter `dependant` (a route's, with its dependencies') reads: its name, its
    annotation and its other accepted names; a query parameter model's fields one by one."""
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            choices = field.field_info.validation_alias
            others = (
                tuple(c for c in choices.choices if isinstance(c, str))
                if isinstance(choices, AliasChoices)
                else ()
            )
            model = field.field_info.annotation
            yield field.alias, model, others
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query parameter model
                for name, f in model.model_fields.items():
                    yield f.alias or name, f.annotation, ()
        pending.extend(current.dependencies)


def declared(dependant: Any) -> frozenset[str]:
    """The query parameter names `dependant` (a route's, with its dependencies') reads."""
    return frozenset(n for name, _, others in _parameters(dependant) for n in (name, *others))


def _is_list(annotation: Any) -> bool:
    """A list (or an optional one): the parameter is repeated to give several values."""
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_list(a) for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        return _is_list(get_args(annotation)[0])
    return get_origin(annotation) in (list, set, frozenset, tuple, Sequence) or annotation in (
        list,
        set,
        tuple,
    )


def repeatable(dependant: Any) -> frozenset[str]:
    """The query parameter names `dependant` reads as lists (`?measures=a&measures=b`)."""
    return frozenset(
        n for name, kind, others in _parameters(dependant) if _is_list(kind) for n in (name, *others)
    )


def authenticates(dependant: Any) -> bool:
    """Whether the route (or a dependency of it) reads the caller's credential."""
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call is current_user:
            return True
        pending.extend(current.dependencies)
    return False


# the cache-buster jQuery and others add (`?_=1733550000000`): no route reads it, and it cannot be
# a misspelled filter, so it is ignored, as the peer ignores every parameter it does not read
CACHE_BUSTER = "_"


async def authenticate(request: Request) -> None:
    """The credential checked before an error about the request's contents: without one (or
    with a bad one) the 401 every route answers, whatever else is wrong."""
    await current_user(request)  # NotAuthenticated: the 401


async def check(
    request: Request, names: frozenset[str], lists: frozenset[str], *, authenticate_first: bool
) -> None:
    keys = request.query_params.multi_items()
    unknown = [k for k in dict.fromkeys(k for k, _ in keys) if k not in names and k != CACHE_BUSTER]
    # one value given twice: Starlette keeps the last, so `cleanup?keep=5&keep=0` deleted every run
    repeated = Counter(k for k, _ in keys if k in names and k not in lists)
    if twice := [k for k, n in repeated.items() if n > 1]:
        if authenticate_first:
            await authenticate(request)
        raise RequestValidationError(
            [
                {
                    "type": "too_many_values",
                    "loc": ("query", name),
                    "msg": f"Query parameter {name!r} is given {repeated[name]} times; it takes one value",
                    "input": None,
                }
                for name in twice
            ]
        )
    if unknown:
        if authenticate_first:
            await authenticate(request)
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"Unknown query parameter {name!r}"
                    + (
                        f"; this route reads {', '.join(sorted(names))}"
                        if names
                        else "; this route reads none"
                    ),
                    "input": None,  # not echoed: a parameter sent by mistake may hold a secret
                }
                for name in unknown
            ]
        )
