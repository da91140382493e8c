"""Metrics as JSON: times in epoch seconds (UTC), as everywhere else in this API.

A bucket is named by its start: calendar-aligned in UTC, so the first one may begin before
the range's `start`. Rows are flat (`bucket`, `group` when grouped, one key per measure) so a
chart can plot them directly; totals nest each measure's value, previous value and change.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from analytics.trends.metrics import MetricsResult
from api.schemas.timestamps import epoch_or_none, epoch_seconds

Number = int | float


class MeasureTotalOut(BaseModel):
    value: Number
    previous: Number | None = Field(description="over the same-length range just before start")
    change: Number | None = Field(description="value - previous")
    change_rel: float | None = Field(description="change / previous; null when previous is 0")


class TotalsOut(BaseModel):
    group: str | None = Field(description="the group's label; absent when not grouped")
    measures: dict[str, MeasureTotalOut]


class MetricsOut(BaseModel):
    bucket: str = Field(description="the bucket width used (auto resolves to one, e.g. '6 hours')")
    start: int
    end: int
    previous_start: int | None
    group_by: str | None
    measures: list[str]
    percentiles_approximate: bool
    tokens_estimated: bool = Field(description="some token counts were estimated from text length")
    groups_truncated: bool = Field(description="more groups had runs than max_groups; the busiest kept")
    rows: list[dict[str, Any]] = Field(
        description="bucket (epoch seconds, start of bucket), group when grouped, one key per measure"
    )
    totals: list[TotalsOut]


def metrics_dict(result: MetricsResult) -> dict[str, Any]:
    """Plain dict for orjson; rows can be many (buckets x groups), so no pydantic per row."""
    rows = result.rows.to_pylist()
    for row in rows:
        row["bucket"] = epoch_seconds(row["bucket"])
    grouped = result.group_by is not None
    totals = []
    for t in result.totals.to_pylist():
        totals.append(
            {
                "group": t["group"] if grouped else None,
                "measures": {
                    m: {
                        "value": t[m],
                        "previous": t[f"{m}_previous"],
                        "change": t[f"{m}_change"],
                        "change_rel": t[f"{m}_change_rel"],
                    }
                    for m in (x.value for x in result.measures)
                },
            }
        )
    return {
        "bucket": result.bucket,
        "start": epoch_seconds(result.start),
        "end": epoch_seconds(result.end),
        "previous_start": epoch_or_none(result.previous_start),
        "group_by": None if result.group_by is None else result.group_by.value,
        "measures": [m.value for m in result.measures],
        "percentiles_approximate": result.percentiles_approximate,
        "tokens_estimated": result.tokens_estimated,
        "groups_truncated": result.groups_truncated,
        "rows": rows,
        "totals": totals,
    }
