"""The web dashboard: `/` serves the page, `/static/...` its files (plain ES modules, no build step).

The page talks only to the public API with the user's bearer token, so these routes need no
auth: they hand out the same files to everyone. Paths are resolved inside the static folder
and anything that escapes it, or that the file system cannot even look up (a NUL byte, a name
too long), is a 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from analytics.core.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static"
# The page is small and changes with each release: revalidate (ETag) rather than cache blindly.
_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC / "index.html", headers=_HEADERS)


@router.get("/static/{path:path}")
def static_file(path: str) -> FileResponse:
    """One of the dashboard's files."""
    target = _inside(path)
    if target is None:
        raise NotFound("No such file")
    return FileResponse(target, headers=_HEADERS)


def _inside(path: str) -> Path | None:
    """The file `path` names inside STATIC, or None.

    A trailing "/" or "/." is refused rather than resolved away: a file is not a folder, and
    the page's relative imports would break under such a URL.
    """
    if "\0" in path or path.endswith(("/", "/.")):
        return None
    try:
        target = (STATIC / path).resolve()
        return target if target.is_relative_to(STATIC) and target.is_file() else None
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP, ...; ValueError: a NUL byte
        return None
