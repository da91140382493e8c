"""Hostile and odd paths, without credentials: always a 404 or 400 JSON answer, never a 500 or a file
from outside the dashboard's folder.

httpx normalizes "." and ".." segments before sending, so those are percent-encoded here: the
server decodes them (%2f included) into the path the route sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from api.routes.dashboard import STATIC

HOSTILE = [
    "/static/%00",
    "/static/app.js%00",
    "/static/js/%00/x.js",
    "/static/..%2f..%2fetc/passwd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2e%2e%2fapp.py",
    "/static/..%5c..%5capp.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/static/%ff%fe",
    "/static/" + "a" * 5000,  # one name past NAME_MAX
    "/static/" + "a/" * 3000,  # a path past PATH_MAX
    "/static/" + "%00" * 500,
    "/static/index.html/",  # a file is not a folder
    "/static/index.html%2f%2e",  # httpx would drop a literal "/." before sending it
    "/static/js%2f%2e",
    "/static/index.html%00.js",
    "/static/js",
    "/static/",
    "/static",
    "/%00",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/index.html%00",
    "/nothing-here",
    "/api/v1/%00",
    "/health/junk",
    "/health%00",
    "/api/v1/flows/%00",
    "/api/v1/users/me/trailing/junk",
]


@pytest.fixture(scope="module")
def anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("hostile")
    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key="x" * 40, port=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p[:40])
def test_a_hostile_path_is_a_json_404_or_400(anon: TestClient, path: str) -> None:
    r = anon.get(path)
    # 405: a path another method takes (PATCH /api/v1/users/{id}, whose id may hold a `/`)
    assert r.status_code in (400, 401, 404, 405), (path[:80], r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "root:" not in r.text


def test_the_dashboard_files_are_still_served(anon: TestClient) -> None:
    assert anon.get("/").status_code == 200
    for f in sorted(p for p in STATIC.rglob("*") if p.is_file())[:20]:
        rel = f.relative_to(STATIC).as_posix()
        r = anon.get(f"/static/{rel}")
        assert r.status_code == 200, rel
        assert r.content == Path(f).read_bytes(), rel


@pytest.mark.parametrize(
    ("path", "location"),
    [("/api/v1/flows", "/api/v1/flows/"), ("/api/v1/jobs/?x=1", "/api/v1/jobs?x=1")],
)
def test_a_slash_redirect_names_only_the_path(anon: TestClient, path: str, location: str) -> None:
    """Starlette built the Location from the Host header the client sent: `Host: evil.example`
    was sent on to http://evil.example/..., an answer a cache in front could keep for others."""
    r = anon.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == location
