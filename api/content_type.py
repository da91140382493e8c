"""A body is read only when it says it is JSON (or NDJSON where a route takes it): else 415.

Why: a cross-site HTML form can POST `text/plain`, `multipart/form-data` or
`application/x-www-form-urlencoded` without the browser asking first (no CORS preflight), and a
`fetch` of an untyped Blob sends no Content-Type at all. A JSON type cannot be sent cross-site
without a preflight, which this server never grants, so requiring one means no other site can
make a browser write here.

The media types a route accepts are the ones its OpenAPI request body declares (a route reading
its body itself declares them in `openapi_extra`), else JSON; `application/*+json` counts as
JSON, parameters such as `charset` are ignored. A request without a body (no Content-Length, or
0, and no Transfer-Encoding) passes whatever its headers say: there is nothing to misread.

A body with a Content-Encoding (gzip, say), or a Transfer-Encoding coding other than `chunked`,
is refused too (415): nothing here decompresses a request, and read as it is, a compressed NDJSON
batch came back as "line N is not JSON" per item.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.requests import Request

JSON = "application/json"


def accepted_types(route: Any) -> frozenset[str] | None:
    """The media types `route` reads its body as; None for a route that takes no body."""
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content")
    if declared:
        return frozenset(t.lower() for t in declared)
    if route.body_field is not None:
        return frozenset({JSON})
    return None


def media_type(header: str) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    return header.split(";", 1)[0].strip().lower()


def is_accepted(header: str | None, accepted: frozenset[str]) -> bool:
    if not header:
        return False
    kind = media_type(header)
    if kind in accepted:
        return True
    return JSON in accepted and kind.startswith("application/") and kind.endswith("+json")


def has_body(request: Request) -> bool:
    headers = request.headers
    if "transfer-encoding" in headers:
        return True
    length = headers.get("content-length")
    return length is not None and length.strip() not in ("", "0")


def check(request: Request, accepted: frozenset[str] | None) -> None:
    """Refuse (415) a body of a type the route does not read; a route without a body ignores it."""
    if accepted is None or not has_body(request):
        return
    # codings past `chunked` (`gzip, chunked`): uvicorn undoes only the chunking, so the body
    # would be read compressed, as with a Content-Encoding
    # every value of a header given more than once (`Content-Encoding: identity` then `gzip`
    # got a gzipped batch past this check, read as "not JSON" item by item)
    others = [c for c in _codings(request, "transfer-encoding") if c not in ("chunked", "identity")]
    if others:
        raise HTTPException(
            415, f"Transfer-Encoding '{', '.join(others)}' is not supported: send the body uncompressed"
        )
    encodings = [c for c in _codings(request, "content-encoding") if c != "identity"]
    if encodings:
        raise HTTPException(
            415, f"Content-Encoding '{', '.join(encodings)}' is not supported: send the body uncompressed"
        )
    types = request.headers.getlist("content-type")
    if len(types) > 1:
        raise HTTPException(415, f"Content-Type is given {len(types)} times: send one")
    header = types[0] if types else None
    if is_accepted(header, accepted):
        return
    refuse(header, accepted)


def _codings(request: Request, name: str) -> list[str]:
    """The codings of every `name` header, in order (`gzip, chunked` is two)."""
    return [
        c.strip().lower() for value in request.headers.getlist(name) for c in value.split(",") if c.strip()
    ]


def refuse(header: str | None, accepted: frozenset[str]) -> None:
    names = " or ".join(sorted(accepted))
    given = f"'{media_type(header)}'" if header else "none"
    raise HTTPException(415, f"Content-Type must be {names} (given: {given})")
