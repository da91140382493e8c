"""Browser tests: a real uvicorn on 127.0.0.1, seeded through the public API, driven by Chromium.

The server runs in a thread of the test process (one store, one writer, as in production);
the browser is Debian's Chromium (`/usr/bin/chromium`, `make test` installs it) under
Playwright, headless. Every screen a test visits is saved under `.ci/artifacts/screenshots/`.
Waits are Playwright's auto-waits with their bounded timeouts: safety nets, never asserts.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, bearer
from tests.live_server import free_port
from tests.smtp_server import SMTP_PASSWORD, SMTP_USER, Mailbox, smtp_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts" / "screenshots"
START_TIMEOUT = 30.0


class LiveApp:
    """The app under uvicorn in a daemon thread; `stop()` lets its lifespan close the store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="e2e-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self) -> LiveApp:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the e2e server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class Api:
    """The public API as the admin: what the tests seed and check through."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def ok(self, r: httpx.Response) -> Any:
        assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        return r.json()

    def create_flow(self, name: str, access_control: dict[str, Any] | None = None) -> str:
        body = {
            "name": name,
            "nodes": [{"id": "input_1"}, {"id": "model_1"}, {"id": "output_1"}],
            "edges": [],
        }
        body["access_control"] = access_control if access_control is not None else {}
        return str(self.ok(self.http.post("/api/v1/flows/create", json=body))["id"])

    def batch(self, runs: list[dict[str, Any]]) -> list[str]:
        result = self.ok(self.http.post("/api/v1/executions/batch", json=runs))
        assert result["refused"] == 0, result
        return [item["id"] for item in result["items"]]

    def annotate(self, flow_id: str, run_id: str, **body: Any) -> None:
        self.ok(self.http.put(f"/api/v1/flows/{flow_id}/executions/{run_id}/annotation", json=body))

    def stats(self, flow_id: str) -> dict[str, Any]:
        return self.ok(self.http.get(f"/api/v1/flows/{flow_id}/executions/stats"))

    def get(self, path: str, **params: Any) -> Any:
        return self.ok(self.http.get(path, params=params))


# The seeded history: 12 runs over the last 3.5 days. 8 ✓, 3 ✗ (two timeouts, one rate limit), 1 ⊘.
DURATIONS = [850, 2500, 1200, 640, 3100, 980, 1500, 15000, 700, 400, 2200, 1300]
ERRORS = {
    1: "upstream timeout after 30s",
    4: "rate limit exceeded for gpt-4o-mini",
    7: "upstream timeout after 30s",
}
ABORTED = {9}
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 12  # 540 characters: truncated in the detail


def hours_ago(i: int) -> int:
    return i * 7 + 1


def standard_runs(flow_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    runs = []
    for i, ms in enumerate(DURATIONS):
        text = LONG_TEXT if i == 0 else f"Answer number {i}"
        model: dict[str, Any] = {
            "modelId": "gpt-4o-mini",
            "content": text,
            "usage": {"prompt_tokens": 100 + i, "completion_tokens": 50 + i},
            "duration_ms": ms - 100,
        }
        status = "error" if i in ERRORS else "aborted" if i in ABORTED else "success"
        node_results = {"input_1": {"value": "hello"}, "model_1": model, "output_1": {"value": text}}
        runs.append(
            {
                "flow_id": flow_id,
                "status": status,
                "inputs": {"prompt": "hello", "files": []},
                "outputs": node_results,
                "node_results": node_results,
                "errors": {"model_1": ERRORS[i]} if i in ERRORS else None,
                "execution_time": ms,
                "created_at": (now - timedelta(hours=hours_ago(i))).isoformat(),
            }
        )
    return runs


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """The SMTP server email alert channels send through (a real one, on loopback)."""
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[LiveApp]:
    folder = tmp_path_factory.mktemp("e2e")
    extra: dict[str, Any] = (
        {"scheduler_enabled": False} if "scheduler_enabled" in Settings.model_fields else {}
    )
    extra["alert_webhook_allow"] = ["127.0.0.1"]  # the alerts test's receiver runs on loopback
    extra.update(
        smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_username=SMTP_USER, smtp_password=SMTP_PASSWORD
    )
    settings = Settings(db_path=folder / "store.duckdb", webui_secret_key=SECRET, port=free_port(), **extra)
    app = LiveApp(settings).start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def api(live: LiveApp) -> Iterator[Api]:
    client = Api(live.url, live.settings.admin_key_file.read_text().strip())
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def seeded(api: Api) -> dict[str, Any]:
    """One flow with the standard history, two of its runs tagged. Tests must not change it."""
    flow_id = api.create_flow("support-bot")
    ids = api.batch(standard_runs(flow_id))
    api.annotate(flow_id, ids[2], tags=["regression"], note="wrong answer")
    api.annotate(flow_id, ids[5], tags=["regression", "slow"])
    return {"flow_id": flow_id, "ids": ids}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session", autouse=True)
def _screenshot_folder() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


class Screens:
    """Saves each screen a test visits as `<test>--<n>-<name>.png`."""

    def __init__(self, page: Any, test_name: str) -> None:
        self.page = page
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.n = 0
        for old in SCREENSHOTS.glob(f"{self.prefix}--*.png"):
            old.unlink()

    def __call__(self, name: str, *, full_page: bool = True) -> Path:
        self.n += 1
        path = SCREENSHOTS / f"{self.prefix}--{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def new_page(
    browser: Any,
    live: LiveApp,
    *,
    width: int = 1280,
    height: int = 900,
    timezone_id: str = "UTC",
    locale: str = "en-GB",
) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": height}, timezone_id=timezone_id, locale=locale, base_url=live.url
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.js_errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    return page


@pytest.fixture
def page(browser: Any, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Any]:
    p = new_page(browser, live)
    yield p
    errors = list(p.js_errors)
    p.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Screens:
    return Screens(page, request.node.name)


def sign_in(page: Any, token: str) -> None:
    page.goto("/")
    page.get_by_label("API key or Open WebUI token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who").wait_for(state="visible")


def jwt(user_id: str, **kw: Any) -> str:
    return bearer(user_id, **kw)["Authorization"].removeprefix("Bearer ")


def close_page(page: Any) -> None:
    """Close the page's context, then fail on any JavaScript error it logged."""
    errors = list(page.js_errors)
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def searches_sent(page: Any) -> list[str]:
    """Every run search the page sends from now on, as the bodies sent."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data or "") if r.url.endswith("/api/v1/executions/search") else None,
    )
    return sent
