"""Token usage and cost: prices per model, and estimates where a node reports no usage.

Usage comes from what a node reports (node_facts.py). A model node that reports none gets an
estimate from text length (~4 characters a token, the usual rule of thumb for English with
OpenAI's tokenizers), flagged `tokens_estimated` wherever it is shown. Cost is computed at
ingest from the price table in force on the run's date: the most specific glob pattern
(longest, fewest wildcards) whose `valid_from` is on or before that date. Local models are
priced at 0 by the default table; a model no pattern matches has no cost (NULL), not 0.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from analytics.core.errors import InvalidInput
from analytics.core.store import Connection

SHIPPED_PRICES = Path(__file__).with_name("prices.json")
# USD per million tokens, at most a dollar a token (the dearest models ask ~$600): with counts up
# to 2**53 a price of 1e308 made a cost of Infinity, stored, shown as null and counted as priced
MAX_PRICE = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Price:
    model_pattern: str
    input_per_million: float
    output_per_million: float
    valid_from: date


def _specificity(pattern: str) -> tuple[int, int]:
    wild = sum(pattern.count(c) for c in "*?[")
    return (-wild, len(pattern))


class PriceTable:
    """In memory, reloaded by the writer after each change (the table is tiny)."""

    def __init__(self) -> None:
        self._prices: list[Price] = []
        self._cache: dict[tuple[str, date], Price | None] = {}
        self._lock = threading.Lock()

    def load(self, conn: Connection) -> None:
        rows = conn.execute(
            "SELECT model_pattern, input_per_million, output_per_million, valid_from FROM prices"
        ).fetchall()
        prices = sorted(
            (Price(*r) for r in rows), key=lambda p: (_specificity(p.model_pattern), p.valid_from)
        )
        with self._lock:
            self._prices = prices
            self._cache = {}

    def all(self) -> list[Price]:
        return sorted(self._prices, key=lambda p: (p.model_pattern, p.valid_from))

    def price_for(self, model: str, on: date) -> Price | None:
        key = (model, on)
        if key in self._cache:
            return self._cache[key]
        best: Price | None = None
        for p in self._prices:  # ascending specificity, then date: the last match wins
            if p.valid_from <= on and fnmatch.fnmatchcase(model.lower(), p.model_pattern.lower()):
                best = p
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = best
        return best

    def cost(
        self, model: str | None, on: date, tokens_in: int | None, tokens_out: int | None
    ) -> float | None:
        if model is None or (tokens_in is None and tokens_out is None):
            return None
        price = self.price_for(model, on)
        if price is None:
            return None
        return (
            (tokens_in or 0) * price.input_per_million + (tokens_out or 0) * price.output_per_million
        ) / 1e6


def parse_prices(data: Any) -> list[Price]:
    """Prices from JSON (the shipped file's `prices` list, or an API body); names the bad field."""
    items = data.get("prices") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput("prices must be a list", field="prices")
    prices = []
    for i, item in enumerate(items):
        try:
            price = Price(
                str(item["model_pattern"]),
                float(item["input_per_million"]),
                float(item["output_per_million"]),
                date.fromisoformat(str(item["valid_from"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"prices[{i}] is not a valid price: {exc}", field=f"prices[{i}]") from exc
        if not price.model_pattern or not all(
            0 <= p <= MAX_PRICE for p in (price.input_per_million, price.output_per_million)
        ):
            raise InvalidInput(
                f"prices[{i}] needs a pattern and prices from 0 to {MAX_PRICE:,.0f}", field=f"prices[{i}]"
            )
        prices.append(price)
    check_unique(prices)
    return prices


def check_unique(prices: list[Price]) -> None:
    """One row per pattern and date: the table's key, and two would make the price ambiguous.

    Patterns match models case-insensitively, so rows differing only in case are the same row.
    """
    seen: dict[tuple[str, date], int] = {}
    for i, p in enumerate(prices):
        first = seen.setdefault((p.model_pattern.lower(), p.valid_from), i)
        if first != i:
            raise InvalidInput(
                f"prices[{i}] repeats prices[{first}]: model_pattern {p.model_pattern!r} and valid_from"
                f" {p.valid_from.isoformat()} (patterns match case-insensitively); keep one row",
                field=f"prices[{i}]",
            )


def shipped_prices(path: Path = SHIPPED_PRICES) -> list[Price]:
    return parse_prices(json.loads(path.read_text())) if path.exists() else []


def replace_prices(conn: Connection, prices: list[Price]) -> None:
    """Replace the table; checked before the first statement, so a bad list changes nothing."""
    check_unique(prices)
    conn.execute("DELETE FROM prices")
    for p in prices:
        conn.execute(
            "INSERT INTO prices VALUES (?, ?, ?, ?)",
            [p.model_pattern, p.input_per_million, p.output_per_million, p.valid_from],
        )
