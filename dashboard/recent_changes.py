""""What changed in the last hour": the few facts an on-call engineer should read first.

Plain comparisons of frames the analytics already return (KPIs of the last hour
against the day before, failure clusters new in the last hour, versions that started),
with thresholds that keep ordinary noise out. Drift detection proper, with its
statistics, is the Drift page's job.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import polars as pl

from stepscope.dashboard.components import fmt_ms, fmt_time, fmt_usd, link

#: A workflow needs this many runs in the hour before its KPIs are compared.
MIN_RUNS = 5
#: Rates must move at least this much (absolute) to be mentioned.
MIN_RATE_CHANGE = 0.05
#: Latency and unit cost must move at least this much (relative).
MIN_RELATIVE_CHANGE = 0.30
RATES = (
    ("completion_rate", "completion rate", True),
    ("escalation_rate", "escalation rate", False),
    ("tool_success_rate", "tool-call success", True),
    ("llm_error_rate", "model-call error rate", False),
)
RATIOS = (
    ("latency_p95_ms", "p95 latency", fmt_ms),
    ("cost_per_completed_task_usd", "cost per completed task", fmt_usd),
)
GOOD, BAD = "#15803d", "#b91c1c"


def _coloured(text: str, good: bool) -> str:
    return f'<span style="color:{GOOD if good else BAD}">{html.escape(text)}</span>'


def kpi_changes(current: pl.DataFrame, baseline: pl.DataFrame, link_for: Callable[..., str]
                ) -> list[str]:
    """KPI moves per workflow beyond the thresholds, worst first within each workflow."""
    before = {row["workflow"]: row for row in baseline.to_dicts()}
    lines: list[str] = []
    for row in current.sort("runs", descending=True).to_dicts():
        name = row["workflow"]
        prior = before.get(name)
        if prior is None or (row["runs"] or 0) < MIN_RUNS:
            continue
        label = link(name or "(no workflow)", link_for(workflow=name) if name else link_for())
        for key, title, up_is_good in RATES:
            now, then = row.get(key), prior.get(key)
            if now is None or then is None or abs(now - then) < MIN_RATE_CHANGE:
                continue
            good = (now > then) == up_is_good
            text = f"{then:.1%} → {now:.1%} ({(now - then) * 100:+.1f} pp)"
            lines.append(f"{label}: {title} {_coloured(text, good)}")
        for key, title, fmt in RATIOS:
            now, then = row.get(key), prior.get(key)
            if now is None or not then or abs(now / then - 1) < MIN_RELATIVE_CHANGE:
                continue
            text = f"{fmt(then)} → {fmt(now)} ({(now / then - 1) * 100:+.0f}%)"
            lines.append(f"{label}: {title} {_coloured(text, now < then)}")
    return lines


def cluster_changes(clusters: pl.DataFrame, link_for: Callable[..., str], limit: int = 3
                    ) -> list[str]:
    """New failures first, then the busiest ongoing ones of the hour."""
    if clusters.is_empty():
        return []
    lines = []
    ordered = clusters.sort(["is_new", "count"], descending=[True, True]).head(limit)
    for row in ordered.to_dicts():
        where = ", ".join([*row["tools"], *row["workflows"]]) or "–"
        example = row["example_trace_ids"][0] if row["example_trace_ids"] else None
        suffix = f" — e.g. {link(example[:12] + '…', link_for(trace=example))}" if example else ""
        kind = _coloured("new failure", False) if row["is_new"] else "failing"
        lines.append(f"{kind}: {html.escape(row['label'])} — {row['count']}× in {html.escape(where)}, "
                     f"since {fmt_time(row['first_seen'])}{suffix}")
    return lines


def release_changes(markers: pl.DataFrame | None) -> list[str]:
    if markers is None or markers.is_empty():
        return []
    return [f"new version: {html.escape(str(row['label']))} first ran at {fmt_time(row['time'])}"
            for row in markers.sort("time").to_dicts()]


def describe_changes(current: pl.DataFrame, baseline: pl.DataFrame, clusters: pl.DataFrame,
                     markers: pl.DataFrame | None, link_for: Callable[..., str]) -> list[str]:
    """HTML lines, most urgent first: failures, then KPI moves, then releases."""
    return [*cluster_changes(clusters, link_for), *kpi_changes(current, baseline, link_for),
            *release_changes(markers)]
