"""The weekly review for engineering leads: what happened this ISO week, against the last.

`weekly_report` gathers the figures (all from the KPI, compare and explore functions, so
the review never disagrees with the dashboard); `stepscope.analytics.report_render`
turns them into Markdown or an HTML e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.compare import compare
from stepscope.analytics.explore import cost_breakdown, release_markers
from stepscope.analytics.filters import Filters
from stepscope.analytics.formatting import format_change, format_value, label, plural
from stepscope.analytics.kpis import kpis
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import Window, parse_iso_week, to_utc

# The per-workflow table of the review, in this order.
REPORT_METRICS = (
    "runs",
    "completion_rate",
    "escalation_rate",
    "tool_success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "cost_per_completed_task_usd",
    "tokens_per_completed_task",
    "cost_usd",
)
# A change is notable when both weeks have this many runs and it moves by this much
# (rates: points of percentage; others: relative change).
MIN_RUNS_FOR_CHANGE = 20
NOTABLE_RATE_POINTS = 0.05
NOTABLE_RELATIVE = 0.20
NOTABLE_METRICS = (
    "completion_rate", "escalation_rate", "tool_success_rate", "llm_error_rate",
    "latency_p95_ms", "cost_per_completed_task_usd", "tokens_per_completed_task",
)
RATE_METRICS = frozenset({"completion_rate", "escalation_rate", "tool_success_rate",
                          "llm_error_rate"})
TOP_COST_DRIVERS = 5
TOP_FAILURES = 8


@dataclass
class WeeklyReport:
    """Everything the review shows; the renderers only format it."""

    week: str
    window: Window
    previous: Window
    totals: pl.DataFrame                    # compare() of all runs: metric, baseline, current, ...
    workflows: pl.DataFrame                 # compare() per workflow, REPORT_METRICS only
    cost_drivers: pl.DataFrame              # workflow, model, cost_usd, previous_cost_usd, change
    failures: pl.DataFrame                  # failure_clusters() of the week, largest first
    notable: list[str] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)


def weekly_report(con: ReadConnection, week: str, config: Config | None = None,
                  filters: Filters | None = None) -> WeeklyReport:
    """The review of ISO week `week` (e.g. `2026-W47`, UTC) against the week before."""
    config = config or Config()
    base = filters or Filters()
    week = week.strip().upper()
    window = parse_iso_week(week)
    previous = window.shifted(-timedelta(days=7))
    this_week = base.with_window(window.start, window.end)
    last_week = base.with_window(previous.start, previous.end)
    totals = compare(con, last_week, this_week, by=(), config=config)
    workflows = compare(con, last_week, this_week, by=("workflow",), config=config,
                        metrics=REPORT_METRICS)
    drivers = _cost_drivers(con, this_week, last_week, config)
    failures = failure_clusters(con, this_week, baseline=previous,
                                config=config).head(TOP_FAILURES)
    report = WeeklyReport(
        week=week, window=window, previous=previous, totals=totals,
        workflows=workflows.filter(pl.col("workflow").is_not_null()),
        cost_drivers=drivers, failures=failures,
    )
    report.unpriced_models = _unpriced_models(con, this_week, config)
    report.notable = _notable(con, report, this_week, last_week, config)
    return report


def _cost_drivers(con: ReadConnection, this_week: Filters, last_week: Filters,
                  config: Config) -> pl.DataFrame:
    keys = ["workflow", "model"]
    now = cost_breakdown(con, this_week, by=keys, bucket=None, config=config)
    before = cost_breakdown(con, last_week, by=keys, bucket=None, config=config)
    joined = now.select(*keys, "llm_calls", "cost_usd").join(
        before.select(*keys, pl.col("cost_usd").alias("previous_cost_usd")),
        on=keys, how="left", nulls_equal=True,
    )
    return (
        joined.with_columns((pl.col("cost_usd") - pl.col("previous_cost_usd").fill_null(0.0))
                            .alias("change_usd"))
        .sort("cost_usd", descending=True, nulls_last=True)
        .head(TOP_COST_DRIVERS)
    )


def _unpriced_models(con: ReadConnection, this_week: Filters, config: Config) -> list[str]:
    spend = cost_breakdown(con, this_week, by="model", bucket=None, config=config)
    rows = spend.filter(pl.col("unpriced_calls") > 0)
    return [f"{m or '(no model name)'} ({plural(n, 'call')})"
            for m, n in rows.select("model", "unpriced_calls").iter_rows()]


def _notable(con: ReadConnection, report: WeeklyReport, this_week: Filters,
             last_week: Filters, config: Config) -> list[str]:
    """Changes a lead should read first: new failures, then KPI moves by size, then the
    releases and models that appeared (often their explanation)."""
    notes: list[tuple[float, str]] = []
    runs = kpis(con, this_week, ("workflow",), config).select("workflow", "runs")
    before = kpis(con, last_week, ("workflow",), config).select(
        "workflow", pl.col("runs").alias("previous_runs"))
    sizes = runs.join(before, on="workflow", how="full", coalesce=True, nulls_equal=True)
    enough = set(sizes.filter((pl.col("runs") >= MIN_RUNS_FOR_CHANGE)
                              & (pl.col("previous_runs") >= MIN_RUNS_FOR_CHANGE))["workflow"])
    changes = compare(con, last_week, this_week, by=("workflow",), config=config,
                      metrics=NOTABLE_METRICS)
    for row in changes.iter_rows(named=True):
        if row["workflow"] not in enough or row["change"] is None:
            continue
        if row["metric"] in RATE_METRICS:
            size = abs(row["change"]) / NOTABLE_RATE_POINTS
        elif row["relative_change"] is not None:
            size = abs(row["relative_change"]) / NOTABLE_RELATIVE
        else:
            continue
        if size >= 1:
            notes.append((size, _describe_change(row)))
    for row in sizes.filter(pl.col("previous_runs").is_null() & pl.col("workflow").is_not_null()
                            ).iter_rows(named=True):
        notes.append((0.5, f"New workflow **{row['workflow']}**: "
                           f"{plural(row['runs'], 'run')} this week."))
    for row in _releases(con, this_week, config).iter_rows(named=True):
        notes.append((0.9, f"Release **{row['service_version']}** of {row['service_name']} "
                           f"first seen {row['first_seen']:%a %d %b %H:%M} UTC "
                           f"({plural(row['runs'], 'run')} this week, in {row['workflows']})."))
    models_now = cost_breakdown(con, this_week, by="model", bucket=None, config=config)
    models_before = set(cost_breakdown(con, last_week, by="model", bucket=None,
                                       config=config)["model"].to_list())
    for row in models_now.iter_rows(named=True):
        if row["model"] not in models_before and row["llm_calls"]:
            notes.append((0.8, f"Model **{row['model']}** first used this week "
                               f"({plural(row['llm_calls'], 'call')})."))
    for row in report.failures.filter(pl.col("is_new")).iter_rows(named=True):
        status = f" (HTTP {row['http_status']})" if row["http_status"] is not None else ""
        notes.append((100 + row["count"],
                      f"New failure **{row['error_type'] or 'error'}**{status}: "
                      f"{plural(row['count'], 'failure')} in {', '.join(row['workflows'])} "
                      f"since {row['first_seen']:%a %d %b %H:%M} UTC: `{row['label']}`"))
    notes.sort(key=lambda n: -n[0])
    return [text for _, text in notes]


def _releases(con: ReadConnection, this_week: Filters, config: Config) -> pl.DataFrame:
    """Service versions whose first run (over all the data) falls in this week."""
    markers = release_markers(con, this_week.with_window(None, None), config=config)
    versions = markers.group_by("service_name", "service_version").agg(
        pl.col("first_seen").min(),
        pl.col("workflow").drop_nulls().unique().sort().str.join(", ").alias("workflows"),
    )
    assert this_week.since is not None and this_week.until is not None
    new = versions.filter(pl.col("first_seen").is_between(
        to_utc(this_week.since), to_utc(this_week.until), closed="left"))
    runs = kpis(con, this_week, ("service_version",), config).select("service_version", "runs")
    return (new.join(runs, on="service_version", how="left")
            .with_columns(pl.col("runs").fill_null(0)).sort("first_seen"))


def _describe_change(row: dict) -> str:
    verdict = {"better": "improved", "worse": "worsened"}.get(row["assessment"], "changed")
    return (f"**{row['workflow']}**: {label(row['metric']).lower()} {verdict} from "
            f"{format_value(row['metric'], row['baseline'])} to "
            f"{format_value(row['metric'], row['current'])} "
            f"({format_change(row['metric'], row['change'], row['relative_change'])}).")
