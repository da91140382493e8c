from tests.factories import World


def test_world_roundtrip(world: World) -> None:
    run = world.post_run("owner", world.shared)
    r = world.client.get(f"/api/v1/flows/{world.shared}/executions/{run['id']}", headers=world.h("owner"))
    assert r.json()["outputs"] == run["node_results"]
