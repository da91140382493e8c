"""The detail shows a run's notes, tags and rating, also after a restart."""

from fastapi.testclient import TestClient

from analytics.core.config import Settings
from api.app import create_app
from tests.factories import World, bearer


def test_detail_shows_the_annotation(world: World, settings: Settings) -> None:
    run = world.post_run("owner", world.shared)
    url = f"/api/v1/flows/{world.shared}/executions/{run['id']}"
    assert world.client.get(url, headers=bearer("owner")).json()["annotation"] is None
    body = {"note": "flaky upstream", "tags": ["incident-42"], "rating": -1}
    assert world.client.put(url + "/annotation", json=body, headers=bearer("writer")).status_code == 200
    shown = world.client.get(url, headers=bearer("owner")).json()["annotation"]
    assert (shown["note"], shown["tags"], shown["rating"], shown["updated_by"]) == (
        "flaky upstream",
        ["incident-42"],
        -1,
        "writer",
    )
    world.client.__exit__(None, None, None)  # stop the app: the next one reads the store afresh
    with TestClient(create_app(settings)) as again:
        assert again.get(url, headers=bearer("owner")).json()["annotation"]["note"] == "flaky upstream"
        assert again.delete(url + "/annotation", headers=bearer("owner")).status_code == 200
        assert again.get(url, headers=bearer("owner")).json()["annotation"] is None


def test_detail_carries_the_per_node_facts(world: World) -> None:
    """Status, duration, tokens (estimated here: the text carries no usage) and cost per node."""
    run = world.post_run(
        "owner",
        world.shared,
        status="error",
        errors={"model_1739905519876_k3j9x2abq": "rate limited"},
    )
    url = f"/api/v1/flows/{world.shared}/executions/{run['id']}"
    detail = world.client.get(url, headers=bearer("owner")).json()
    assert detail["nodes"] == run["nodes"]  # the create response carries them too
    nodes = {n["node_id"]: n for n in detail["nodes"]}
    assert set(nodes) == {"input_1739905519876_a1b2c3d4e", "model_1739905519876_k3j9x2abq"}
    model = nodes["model_1739905519876_k3j9x2abq"]
    assert (model["node_type"], model["model"], model["status"], model["error"]) == (
        "model",
        "gpt-4o-mini",
        "error",
        "rate limited",
    )
    assert model["tokens_estimated"] is True and model["tokens_out"] > 0 and model["cost"] > 0
    assert nodes["input_1739905519876_a1b2c3d4e"]["model"] is None
