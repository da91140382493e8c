"""Metrics as JSON: times in epoch seconds (UTC), as everywhere else in this API.

A bucket is named by its start: calendar-aligned in UTC (or, for day, week and month buckets,
at the local midnights of the query's `tz`), so the first one may begin before
the range's `start`. A bucket without runs has 0 for counts and null for rates, averages,
percentiles and cost (a gap, not a zero). Rows are flat (`bucket`, `group` when grouped, one key per measure) so a
chart can plot them directly; totals nest each measure's value, previous value and change.
`MetricsOut` reads the library's `MetricsResult` (`from_attributes`); its Arrow tables become
rows here, in one `to_pylist` each.
"""

from __future__ import annotations

from typing import Annotated, Any

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.timestamps import EpochSeconds, epoch_seconds

Number = int | float


def _rows(table: Any) -> Any:
    """One dict per (bucket, group) row, its bucket start in epoch seconds."""
    if not isinstance(table, pa.Table):
        return table
    rows = table.to_pylist()
    for row in rows:
        row["bucket"] = epoch_seconds(row["bucket"])
    return rows


class MeasureTotalOut(BaseModel):
    value: Number | None = Field(description="null for rates, averages, percentiles and cost of no runs")
    previous: Number | None = Field(description="over the same-length range just before start")
    change: Number | None = Field(description="value - previous")
    change_rel: float | None = Field(description="change / previous; null when previous is 0")


class TotalsOut(BaseModel):
    group: str | None = Field(description="the group's label; absent when not grouped")
    measures: dict[str, MeasureTotalOut]


class MetricsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    bucket: str = Field(description="the bucket width used (auto resolves to one, e.g. '6 hours')")
    start: EpochSeconds
    end: EpochSeconds
    previous_start: EpochSeconds | None
    group_by: str | None
    tz: str = Field(description="the zone whose local midnights start day, week and month buckets")
    measures: list[str]
    percentiles_approximate: bool
    tokens_estimated: bool = Field(description="some token counts were estimated from text length")
    groups_truncated: bool = Field(description="more groups had runs than max_groups; the busiest kept")
    rows: Annotated[list[dict[str, Any]], BeforeValidator(_rows)] = Field(
        description="bucket (epoch seconds, start of bucket), group when grouped, one key per measure"
    )
    totals: list[TotalsOut]

    @field_validator("totals", mode="before")
    @classmethod
    def _totals(cls, table: Any, info: ValidationInfo) -> Any:
        """The totals table's flat columns (`m`, `m_previous`, ...) nested per measure."""
        if not isinstance(table, pa.Table):
            return table
        grouped = info.data.get("group_by") is not None
        names = info.data.get("measures", [])
        return [
            {
                "group": t["group"] if grouped else None,
                "measures": {
                    m: {
                        "value": t[m],
                        "previous": t[f"{m}_previous"],
                        "change": t[f"{m}_change"],
                        "change_rel": t[f"{m}_change_rel"],
                    }
                    for m in names
                },
            }
            for t in table.to_pylist()
        ]
