"""A DELETE with a trailing slash is never redirected.

`DELETE /api/v1/flows/F/executions/` (a client's run id left empty; `%2F` decodes to the same
slash) was answered 307 to `DELETE /api/v1/flows/F/executions`, the contract's "delete every
run", and clients follow a 307 with its method: one bad id deleted the flow's history.
"""

from __future__ import annotations

import pytest

from tests.factories import World, bearer


@pytest.mark.parametrize("tail", ["executions/", "executions/%2F", "executions/%2f"])
def test_a_delete_with_an_empty_id_deletes_nothing(world: World, tail: str) -> None:
    for _ in range(3):
        world.post_run("owner", world.private)
    r = world.client.delete(
        f"/api/v1/flows/{world.private}/{tail}", headers=bearer("owner"), follow_redirects=True
    )
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/json"
    assert "never redirected" in r.json()["detail"] and "nothing was deleted" in r.json()["detail"]
    assert "location" not in r.headers
    stats = world.client.get(f"/api/v1/flows/{world.private}/executions/stats", headers=bearer("owner"))
    assert stats.json()["total_executions"] == 3


def test_a_flow_delete_with_a_trailing_slash_deletes_nothing(world: World) -> None:
    r = world.client.delete(f"/api/v1/flows/{world.private}/", headers=bearer("owner"), follow_redirects=True)
    assert r.status_code == 404
    assert world.client.get(f"/api/v1/flows/{world.private}", headers=bearer("owner")).status_code == 200


def test_other_methods_are_still_redirected(world: World) -> None:
    r = world.client.get("/api/v1/flows", headers=bearer("owner"), follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/api/v1/flows/"
    r = world.client.post(
        f"/api/v1/flows/{world.private}/executions/",
        json={"flow_id": world.private, "status": "success", "execution_time": 1},
        headers=bearer("owner"),
        follow_redirects=False,
    )
    assert r.status_code == 307
