"""PUT /api/v1/prices with two rows for one pattern and date: a 422 naming the rows, nothing written.

The table's key is (model_pattern, valid_from); a duplicate used to reach DuckDB and answer 500.
Patterns match models case-insensitively, so rows that differ only in case are duplicates too:
either one could price a run.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.core.errors import InvalidInput
from analytics.cost.prices import parse_prices
from tests.factories import World, bearer

PRICES = "/api/v1/prices"


def row(pattern: str, valid_from: str, price: float = 1.0) -> dict[str, Any]:
    return {
        "model_pattern": pattern,
        "input_per_million": price,
        "output_per_million": price * 2,
        "valid_from": valid_from,
    }


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([row("gpt-x*", "2024-01-01"), row("gpt-x*", "2024-01-01", 3.0)], "prices[1]"),
        ([row("a", "2024-01-01"), row("b", "2024-01-01"), row("a", "2024-01-01")], "prices[2]"),
        ([row("Claude-*", "2024-05-01"), row("claude-*", "2024-05-01", 2.0)], "prices[1]"),
    ],
)
def test_duplicate_rows_are_a_422_and_the_table_stays(world: World, rows: list[Any], named: str) -> None:
    client: TestClient = world.client
    before = client.get(PRICES, headers=bearer("admin")).json()
    assert before  # the shipped table, seeded on first start

    r = client.put(PRICES, json={"prices": rows}, headers=bearer("admin"))

    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and named in detail and "valid_from" in detail, detail
    assert client.get(PRICES, headers=bearer("admin")).json() == before
    # the store agrees with the in-memory table
    stored = world.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM prices").fetchone())
    assert stored == (len(before),)


def test_same_pattern_on_other_dates_is_fine(world: World) -> None:
    rows = [row("gpt-x*", "2024-01-01"), row("gpt-x*", "2024-06-01", 2.0), row("GPT-Y", "2024-01-01")]
    r = world.client.put(PRICES, json={"prices": rows}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    got = {(p["model_pattern"], p["valid_from"]) for p in r.json()}
    assert got == {(x["model_pattern"], x["valid_from"]) for x in rows}


def test_parse_prices_refuses_duplicates_too() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_prices({"prices": [row("m", "2024-01-01"), row("M", "2024-01-01")]})
    assert exc.value.field == "prices[1]"


@pytest.mark.parametrize("price", [1e308, 1_000_001.0])
def test_a_price_past_a_dollar_a_token_is_refused(world: World, price: float) -> None:
    """1e308 per million made a run's cost Infinity: stored, answered null while the run counted
    as priced, and a cost alert fired with `value: null`."""
    before = world.client.get(PRICES, headers=bearer("admin")).json()
    for field in ("input_per_million", "output_per_million"):
        body = {"prices": [{**row("big*", "2024-01-01"), field: price}]}
        r = world.client.put(PRICES, json=body, headers=bearer("admin"))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][-1] == field
    assert world.client.get(PRICES, headers=bearer("admin")).json() == before
    with pytest.raises(InvalidInput) as exc:
        parse_prices({"prices": [row("big*", "2024-01-01", price)]})
    assert exc.value.field == "prices[0]"
    ok = world.client.put(
        PRICES, json={"prices": [row("big*", "2024-01-01", 500_000.0)]}, headers=bearer("admin")
    )
    assert ok.status_code == 200, ok.text
