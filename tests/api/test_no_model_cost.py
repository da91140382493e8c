"""A run without a model node costs 0 on every answer: its detail, the list, the trend and the
cost report. It was `null` ("—", unknown) everywhere but the cost report, which said $0."""

from __future__ import annotations

from tests.factories import World, bearer


def test_a_run_without_a_model_node_costs_0_everywhere(world: World) -> None:
    flow = world.shared
    run = world.client.post(
        f"/api/v1/flows/{flow}/executions",
        json={
            "flow_id": flow,
            "status": "success",
            "execution_time": 5,
            "node_results": {"input_1": {"value": "hi"}},
        },
        headers=bearer("owner"),
    ).json()
    unpriced = world.client.post(
        f"/api/v1/flows/{flow}/executions",
        json={"flow_id": flow, "status": "success", "execution_time": 5,
              "node_results": {"m": {"model": "no-price-matches", "usage": {"prompt_tokens": 3}}}},
        headers=bearer("owner"),
    ).json()  # fmt: skip
    get = world.client.get
    assert get(f"/api/v1/flows/{flow}/executions/{run['id']}", headers=bearer("owner")).json()["cost"] == 0.0
    assert (
        get(f"/api/v1/flows/{flow}/executions/{unpriced['id']}", headers=bearer("owner")).json()["cost"]
        is None
    )
    span = "start=2000-01-01&end=2100-01-01"
    trend = get(
        f"/api/v1/flows/{flow}/trend?measures=cost&bucket=month&{span}", headers=bearer("owner")
    ).json()
    assert trend["totals"][0]["measures"]["cost"]["value"] == 0.0
    [row] = get(f"/api/v1/cost?{span}&group_by=flow", headers=bearer("owner")).json()
    assert row["cost"] == 0.0 and row["unpriced_runs"] == 1
