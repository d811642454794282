"""Failure clusters: every failed step in one cluster of the same failure, with a stable id.

The work is split so that its cost follows the number of distinct failures, not rows:

1. SQL (`sql/failure_keys.sql`) selects failed steps, masks each *distinct* message into
   a template (`error_templates`), and aggregates per failure key (error type, HTTP
   status, tool, template): counts, first/last seen, workflows, models, versions, a
   trend per time bucket, example traces, and the counts that decide "new".
2. Each key gets its fingerprint, a hash of the key (`error_templates.fingerprint`).
3. Templates of one error type and HTTP status are grouped for display
   (`template_groups`): template mining joins those differing in one token, then
   scikit-learn joins near-identical ones; a group reports its members' fingerprints.

A cluster's `cluster_id` is the fingerprint of its first-seen member (ties: the most
frequent, then the smallest id), so it is one of the member ids, never a label of a
clustering run, and it is the same after a re-run, a re-ingest or a different data order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from stepscope.analytics import run_tables, runner
from stepscope.analytics.error_templates import fingerprint_of_key, templates_sql
from stepscope.analytics.filters import Filters
from stepscope.analytics.template_groups import DEFAULT_SIMILARITY, group_templates
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import Window, format_duration, to_utc, utc_now

NS_PER_S = 1_000_000_000
#: Without --since, "new" means: seen in the last day and not in the 7 days before it.
DEFAULT_NEW_WINDOW = timedelta(days=1)
DEFAULT_BASELINE_LENGTH = timedelta(days=7)
#: Trend buckets: the finest of these that gives at most MAX_TREND_BUCKETS buckets.
TREND_BUCKETS = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
                 timedelta(hours=6), timedelta(days=1), timedelta(weeks=1))
MAX_TREND_BUCKETS = 400
EXAMPLES_PER_CLUSTER = 3
NS_MAX = 2**63 - 1

#: Columns of the frame `failure_clusters` returns, in order.
CLUSTER_COLUMNS = (
    "cluster_id", "label", "count", "error_type", "http_status", "workflows", "tools", "models",
    "service_versions", "first_seen", "last_seen", "is_new", "trend", "trend_start",
    "trend_bucket", "example_trace_ids", "member_ids",
)


@dataclass(frozen=True)
class ClusterWindows:
    """The resolved windows of one clustering: what is counted and what "new" is against."""

    start_ns: int | None
    end_ns: int | None
    baseline: Window


def _ns(value: datetime) -> int:
    return int(to_utc(value).timestamp()) * NS_PER_S + to_utc(value).microsecond * 1000


def from_ns(value: int | None) -> datetime | None:
    """Nanoseconds since the epoch as a UTC datetime, in integers (floats lose microseconds)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value // NS_PER_S, UTC).replace(microsecond=(value % NS_PER_S) // 1000)


def resolve_windows(filters: Filters, baseline: Window | None, now: datetime | None) -> ClusterWindows:
    """The baseline defaults to the 7 days before `since`; without `since`, to the 7 days
    before the last day (ending at `until`, else at `now`), so "new" means new today."""
    if baseline is None:
        if filters.since is not None:
            baseline = Window(to_utc(filters.since) - DEFAULT_BASELINE_LENGTH, to_utc(filters.since))
        else:
            ref = to_utc(filters.until) if filters.until is not None else to_utc(now or utc_now())
            end = ref - DEFAULT_NEW_WINDOW
            baseline = Window(end - DEFAULT_BASELINE_LENGTH, end)
    return ClusterWindows(
        start_ns=_ns(filters.since) if filters.since is not None else None,
        end_ns=_ns(filters.until) if filters.until is not None else None,
        baseline=baseline,
    )


def trend_bucket(start_ns: int, end_ns: int) -> timedelta:
    """The finest bucket that shows the window in at most MAX_TREND_BUCKETS points."""
    span_s = max(1, (end_ns - start_ns) // NS_PER_S)
    for bucket in TREND_BUCKETS:
        if span_s / bucket.total_seconds() <= MAX_TREND_BUCKETS:
            return bucket
    return TREND_BUCKETS[-1]


def _data_bounds(con: ReadConnection, windows: ClusterWindows) -> tuple[int, int] | None:
    lo, hi = runner.run(con, "failed_step_bounds", {
        "start_ns": windows.start_ns or 0, "end_ns": windows.end_ns or NS_MAX,
    }).row(0)
    return None if lo is None else (int(lo), int(hi) + 1)


def failure_clusters(con: ReadConnection, filters: Filters | None = None, *,
                     baseline: Window | None = None, now: datetime | None = None,
                     bucket: timedelta | None = None,
                     similarity: float = DEFAULT_SIMILARITY,
                     examples: int = EXAMPLES_PER_CLUSTER,
                     config: Config | None = None) -> pl.DataFrame:
    """Clusters of the failed steps in `filters`' window, most failures first.

    `filters.since`/`until` bound the failures' start times (all data when unset); the
    other filters select runs (workflow, service version, tenant, ...). `is_new` says
    the cluster failed after the baseline window and never within it (default baseline:
    see `resolve_windows`). `trend` counts failures per `trend_bucket` from
    `trend_start` to the window's end. Columns: `CLUSTER_COLUMNS`. The failed steps and
    their runs' facts come from the run tables (`config` names their prices).
    """
    filters = filters or Filters()
    run_tables.prepare(con, config or Config(), needs=("failed_parts",))
    windows = resolve_windows(filters, baseline, now)
    bounds = _data_bounds(con, windows)
    if bounds is None:
        return empty_clusters()
    start_ns = windows.start_ns if windows.start_ns is not None else bounds[0]
    end_ns = windows.end_ns if windows.end_ns is not None else bounds[1]
    bucket = bucket or trend_bucket(start_ns, end_ns)
    bucket_ns = int(bucket.total_seconds()) * NS_PER_S
    baseline_start, baseline_end = _ns(windows.baseline.start), _ns(windows.baseline.end)
    run_filter, params = filters.with_window(None, None).where_sql("r")
    params.update({
        "scan_start_ns": min(start_ns, baseline_start),
        "start_ns": start_ns,
        "end_ns": end_ns,
        "baseline_start_ns": baseline_start,
        "baseline_end_ns": baseline_end,
        "bucket_ns": bucket_ns,
        "examples": examples,
    })
    keys = runner.run(con, "failure_keys", params, run_filter=run_filter,
                      message_templates=templates_sql("(SELECT DISTINCT message FROM selected)"))
    if keys.is_empty():
        return empty_clusters()
    return _assemble(keys, similarity, start_ns, end_ns, bucket_ns)


def _assemble(keys: pl.DataFrame, similarity: float, start_ns: int, end_ns: int,
              bucket_ns: int) -> pl.DataFrame:
    """Fingerprint each failure key, group near-identical ones, and build cluster rows."""
    keys = keys.with_columns(
        pl.col("failure_key").map_elements(fingerprint_of_key, return_dtype=pl.String)
        .alias("fingerprint"),
    ).sort("fingerprint")
    rows = keys.to_dicts()
    groups, labels = group_templates(
        [r["template"] for r in rows],
        [(r["error_type"] or "", r["http_status"]) for r in rows],
        [r["count"] for r in rows],
        similarity,
    )
    first_bucket = (start_ns // bucket_ns) * bucket_ns
    n_buckets = max(1, (end_ns - 1) // bucket_ns - start_ns // bucket_ns + 1)
    members: dict[int, list[dict]] = {}
    for row, g in zip(rows, groups.tolist(), strict=True):
        members.setdefault(g, []).append(row)
    out = [_cluster_row(group, labels[g], first_bucket, n_buckets, bucket_ns)
           for g, group in members.items()]
    frame = pl.DataFrame(out, schema=_schema(), orient="row")
    return frame.sort(["count", "cluster_id"], descending=[True, False])


def _cluster_row(members: list[dict], label: str, first_bucket: int, n_buckets: int,
                 bucket_ns: int) -> tuple:
    founder = min(members, key=lambda r: (r["first_seen_ns"], -r["count"], r["fingerprint"]))
    trend = np.zeros(n_buckets, dtype=np.int64)
    for m in members:
        pos = (np.asarray(m["bucket_starts_ns"], dtype=np.int64) - first_bucket) // bucket_ns
        np.add.at(trend, np.clip(pos, 0, n_buckets - 1), np.asarray(m["bucket_counts"], dtype=np.int64))
    examples = sorted(
        ((seen, trace) for m in members
         for trace, seen in zip(m["example_trace_ids"], m["example_seen_ns"], strict=True)),
        reverse=True,
    )
    example_ids = list(dict.fromkeys(t for _, t in examples))[:EXAMPLES_PER_CLUSTER]
    baseline = sum(m["baseline_count"] for m in members)
    after = sum(m["after_baseline_count"] for m in members)
    return (
        founder["fingerprint"],
        label or _fallback_label(founder),
        sum(m["count"] for m in members),
        founder["error_type"],
        founder["http_status"],
        _union(members, "workflows"),
        sorted({m["tool"] for m in members if m["tool"]}),
        sorted({name for m in members for names in (m["models"] or []) if names
                for name in names.split(",")}),
        _union(members, "service_versions"),
        from_ns(min(m["first_seen_ns"] for m in members)),
        from_ns(max(m["last_seen_ns"] for m in members)),
        baseline == 0 and after > 0,
        trend.tolist(),
        from_ns(first_bucket),
        format_duration(timedelta(seconds=bucket_ns // NS_PER_S)),
        example_ids,
        sorted(m["fingerprint"] for m in members),
    )


def _fallback_label(row: dict) -> str:
    """A failure without a message is named by its error type and HTTP status."""
    text = row["error_type"] or "error"
    if row["http_status"] is not None:
        text += f" (HTTP {row['http_status']})"
    return text


def _union(members: list[dict], column: str) -> list[str]:
    return sorted({v for m in members for v in (m[column] or []) if v is not None})


def _schema() -> dict[str, pl.DataType]:
    strings = pl.List(pl.String)
    return {
        "cluster_id": pl.String, "label": pl.String, "count": pl.Int64,
        "error_type": pl.String, "http_status": pl.Int64, "workflows": strings,
        "tools": strings, "models": strings, "service_versions": strings,
        "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
        "is_new": pl.Boolean, "trend": pl.List(pl.Int64),
        "trend_start": pl.Datetime("us", "UTC"), "trend_bucket": pl.String,
        "example_trace_ids": strings, "member_ids": strings,
    }


def empty_clusters() -> pl.DataFrame:
    return pl.DataFrame(schema=_schema())
