"""/metrics: Prometheus text parsed with the client's own parser, checked against the store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import SECRET, World, make_execution
from tests.live_server import free_port


def scrape(client: TestClient, world: World) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = client.get("/metrics", headers=world.h("admin"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def count_runs(world: World) -> int:
    return int(world.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM executions").fetchone()[0]))


def test_requests_by_route_template_and_acknowledged_runs(client: TestClient, world: World) -> None:
    route = "/api/v1/flows/{flow_id}/executions"
    before = scrape(client, world)
    posted_before = sum(
        v
        for lab, v in before.get("flowhistory_http_requests_total", [])
        if lab["route"] == route and lab["method"] == "POST" and lab["status"] == "200"
    )
    ids = [world.post_run("owner", world.shared)["id"] for _ in range(7)]
    batch = [make_execution(world.shared) for _ in range(5)]
    assert client.post("/api/v1/executions/batch", json=batch, headers=world.h("owner")).json()["stored"] == 5
    for run_id in ids[:3]:
        assert (
            client.get(
                f"/api/v1/flows/{world.shared}/executions/{run_id}", headers=world.h("owner")
            ).status_code
            == 200
        )
    missing = client.get(f"/api/v1/flows/{world.shared}/executions/nope", headers=world.h("owner"))
    assert missing.status_code == 404
    assert client.get("/no/such/path/" + ids[0]).status_code == 404

    after = scrape(client, world)
    assert (
        value(after, "flowhistory_http_requests_total", method="POST", route=route, status="200")
        == posted_before + 7
    )
    detail = "/api/v1/flows/{flow_id}/executions/{execution_id}"
    assert value(after, "flowhistory_http_requests_total", method="GET", route=detail, status="200") == 3
    assert value(after, "flowhistory_http_requests_total", method="GET", route=detail, status="404") == 1
    assert (
        value(after, "flowhistory_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    )
    # labels are templates: no run or flow id, no raw path ever becomes a label
    text = client.get("/metrics", headers=world.h("admin")).text
    assert ids[0] not in text and world.shared not in text
    buckets = [
        lab for lab, _ in after["flowhistory_http_request_duration_seconds_bucket"] if lab["route"] == detail
    ]
    assert {"0.005", "+Inf"} <= {lab["le"] for lab in buckets}
    assert value(after, "flowhistory_http_request_duration_seconds_count", method="GET", route=detail) == 4
    # every run the store holds was acknowledged through the writer (build_world's too)
    assert value(after, "flowhistory_acknowledged_runs_total") == count_runs(world)
    assert (
        value(after, "flowhistory_acknowledged_runs_total")
        - value(before, "flowhistory_acknowledged_runs_total")
        == 12
    )
    assert value(after, "flowhistory_group_commit_size_count") > value(
        before, "flowhistory_group_commit_size_count"
    )
    assert value(after, "flowhistory_group_commit_duration_seconds_count") > 0
    assert value(after, "flowhistory_writer_queue_depth") >= 0
    db = world.ctx.settings.db_path
    assert value(after, "flowhistory_store_file_bytes", file="db") == db.stat().st_size > 0
    wal = db.with_name(db.name + ".wal")
    assert value(after, "flowhistory_store_file_bytes", file="wal") == (
        wal.stat().st_size if wal.exists() else 0
    )


def test_jobs_alerts_and_export_lag(client: TestClient, world: World) -> None:
    before = scrape(client, world)
    assert "flowhistory_export_lag_seconds" not in before  # never exported: no lag is claimed
    world.post_run("owner", world.shared)
    for job in ("alerts", "export"):
        r = client.post(f"/api/v1/jobs/{job}/run?wait=true", headers=world.h("admin"))
        assert r.status_code == 200, r.text
    after = scrape(client, world)
    for job in ("alerts", "export"):
        assert (
            value(after, "flowhistory_job_runs_total", job=job)
            == value(before, "flowhistory_job_runs_total", job=job) + 1
        )
        assert value(after, "flowhistory_job_failures_total", job=job) == 0
        assert value(after, "flowhistory_job_last_duration_seconds", job=job) > 0
    assert (
        value(after, "flowhistory_alert_evaluations_total")
        >= value(before, "flowhistory_alert_evaluations_total") + 1
    )
    status = client.get("/api/v1/exports/status", headers=world.h("admin")).json()
    assert status["last_ok_cycle"] is not None
    assert 0 <= value(after, "flowhistory_export_lag_seconds") < 600


def test_only_admins_scrape(client: TestClient, world: World) -> None:
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers=world.h("owner"))
    assert r.status_code == 403
    assert "detail" in r.json()


def test_request_id_accepted_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123.x:y"}).headers["x-request-id"]
        == "abc-123.x:y"
    )
    for bad in ("x" * 200, "a b", "<script>", "id\u00e9"):
        got = client.get("/health", headers={"X-Request-ID": bad.encode()}).headers["x-request-id"]
        assert got != bad and len(got) == 32
    a, b = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert a != b


def test_separate_port_without_auth(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET, metrics_port=port)
    with TestClient(create_app(settings)) as client:
        client.get("/health")
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200
        samples = parse(r.text)
        assert (
            value(samples, "flowhistory_http_requests_total", method="GET", route="/health", status="200")
            == 1
        )
        assert client.get("/metrics").status_code == 401  # the API's port still wants an admin
    with pytest.raises(httpx.HTTPError):  # stopped with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_off(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "s.duckdb", webui_secret_key=SECRET, metrics_enabled=False)
    with TestClient(create_app(settings)) as client:
        r = client.get("/health", headers={"X-Request-ID": "still-echoed"})
        assert r.headers["x-request-id"] == "still-echoed"
        assert client.get("/metrics").status_code == 404


def test_a_head_request_carries_its_routes_template(client: TestClient, world: World) -> None:
    """A HEAD is routed as its GET in a scope of its own: it was counted under `<unmatched>`,
    which is for paths no route knows (and requests refused before routing, as a 413)."""
    before = scrape(client, world)
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"x": "' + b"a" * limit + b'"}'
    r = client.post(
        f"/api/v1/flows/{world.shared}/executions",
        content=big,
        headers={**world.h("owner"), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert client.head("/health").status_code == 200
    assert (
        client.head(f"/api/v1/flows/{world.shared}/executions", headers=world.h("owner")).status_code == 200
    )
    after = scrape(client, world)

    def grew(**labels: str) -> float:
        def count(samples: dict[str, list[tuple[dict[str, str], float]]]) -> float:
            found = samples.get("flowhistory_http_requests_total", [])
            return sum(v for lab, v in found if all(lab.get(k) == x for k, x in labels.items()))

        return count(after) - count(before)

    assert grew(method="POST", route="<unmatched>", status="413") == 1  # refused before routing
    assert grew(method="HEAD", route="/health", status="200") == 1
    assert grew(method="HEAD", route="/api/v1/flows/{flow_id}/executions", status="200") == 1
    assert grew(method="HEAD", route="<unmatched>") == 0
