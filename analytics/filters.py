"""What to look at (filters) and how to slice it (group keys), as SQL fragments.

The dashboard keeps its global filters in one `Filters` value and passes it to every
analytics function, so a page and `stepscope kpis` with the same flags read the same
runs. Only names from the whitelists below ever become SQL; values are parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from stepscope.timeparse import Window, to_utc

# Group keys over the per-run table `run_facts r` (and `run_models m` for model).
# Days, hours and ISO weeks are UTC and come from the run's start.
RUN_GROUP_EXPR = {
    "workflow": "r.workflow",
    "model": "m.model",
    "service_version": "r.service_version",
    "service": "r.service_name",
    "environment": "r.environment",
    "tenant": "r.tenant_id",
    "user": "r.user_id",
    "day": "CAST(date_trunc('day', r.run_start) AS DATE)",
    "week": "CAST(date_trunc('week', r.run_start) AS DATE)",
    "hour": "date_trunc('hour', r.run_start)",
}
# The group keys `stepscope kpis --by` offers.
KPI_GROUP_KEYS = ("workflow", "model", "service_version", "tenant", "user", "day", "week")
# Time buckets of series.
BUCKETS = ("hour", "day", "week")


class FilterError(ValueError):
    """A group key or filter value the analytics do not know (a usage error, exit 2)."""


@dataclass(frozen=True)
class Filters:
    """Which runs to include. Empty tuples mean "all"; times are on the run's start.

    `since` is inclusive and `until` exclusive, so consecutive windows never share a run.
    """

    since: datetime | None = None
    until: datetime | None = None
    workflows: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    service_versions: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def window(cls, window: Window, **others: Any) -> Filters:
        return cls(since=window.start, until=window.end, **others)

    def with_window(self, since: datetime | None, until: datetime | None) -> Filters:
        return replace(self, since=since, until=until)

    def where_sql(self, alias: str = "r") -> tuple[str, dict[str, Any]]:
        """A WHERE condition on `run_facts` and its parameters (TRUE when unfiltered)."""
        conds: list[str] = []
        params: dict[str, Any] = {}
        if self.since is not None:
            conds.append(f"{alias}.run_start >= $since")
            params["since"] = _naive_utc(self.since)
        if self.until is not None:
            conds.append(f"{alias}.run_start < $until")
            params["until"] = _naive_utc(self.until)
        for name, column, values in (
            ("workflow", "workflow", self.workflows),
            ("environment", "environment", self.environments),
            ("service_version", "service_version", self.service_versions),
            ("tenant", "tenant_id", self.tenants),
            ("user", "user_id", self.users),
            ("trace", "trace_id", self.trace_ids),
        ):
            if values:
                conds.append(f"{alias}.{column} IN ({_placeholders(name, values, params)})")
        if self.models:
            conds.append(
                f"{alias}.trace_id IN (SELECT mf.trace_id FROM run_models mf "
                f"WHERE mf.model IN ({_placeholders('model', self.models, params)}))"
            )
        return (" AND ".join(conds) if conds else "TRUE"), params


def _placeholders(name: str, values: Sequence[str], params: dict[str, Any]) -> str:
    names = []
    for i, value in enumerate(values):
        params[f"{name}_{i}"] = value
        names.append(f"${name}_{i}")
    return ", ".join(names)


def _naive_utc(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return to_utc(value).replace(tzinfo=None)


def check_group_keys(by: Iterable[str], allowed: Sequence[str] = tuple(RUN_GROUP_EXPR)) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(by))
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise FilterError(
            f"unknown group key {unknown[0]!r}; choose from {', '.join(allowed)}"
        )
    return keys


def group_sql(by: Sequence[str]) -> tuple[str, str, bool]:
    """(select list, GROUP BY list, needs run_models) for run-level group keys."""
    keys = check_group_keys(by)
    if not keys:
        return "", "", False
    select = ", ".join(f'{RUN_GROUP_EXPR[k]} AS "{k}"' for k in keys) + ","
    group = "GROUP BY " + ", ".join(RUN_GROUP_EXPR[k] for k in keys)
    return select, group, "model" in keys


def label_weeks(frame: pl.DataFrame) -> pl.DataFrame:
    """ISO week columns (the Monday's date from SQL) as `2026-W47` labels."""
    if "week" not in frame.columns or frame.schema["week"] != pl.Date:
        return frame
    return frame.with_columns(
        pl.format("{}-W{}", pl.col("week").dt.iso_year(),
                  pl.col("week").dt.week().cast(pl.String).str.zfill(2)).alias("week")
    )


def previous_window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The window of the same length just before [since, until)."""
    length: timedelta = until - since
    return since - length, since
