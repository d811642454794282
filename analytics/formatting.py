"""Numbers as people read them in the weekly review: rates as percentages, latency in
ms or s, money in dollars with the precision small per-task costs need."""

from __future__ import annotations

RATE_SUFFIX = "_rate"
LABELS = {
    "runs": "Runs",
    "completion_rate": "Completion rate",
    "escalation_rate": "Escalation rate",
    "tool_success_rate": "Tool success",
    "llm_error_rate": "LLM error rate",
    "latency_p50_ms": "Latency p50",
    "latency_p95_ms": "Latency p95",
    "cost_usd": "Spend",
    "cost_per_completed_task_usd": "Cost / completed task",
    "tokens_per_completed_task": "Tokens / completed task",
    "unpriced_llm_calls": "Unpriced model calls",
}


def format_value(metric: str, value: float | int | None) -> str:
    if value is None:
        return "–"
    if metric.endswith(RATE_SUFFIX):
        return f"{value * 100:.1f}%"
    if metric.endswith("_ms"):
        return f"{value / 1000:.2f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    if metric.endswith("_usd"):
        return format_usd(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def format_usd(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"${value:,.0f}"
    if magnitude >= 1:
        return f"${value:,.2f}"
    if magnitude == 0:
        return "$0"
    return f"${value:.4f}"


def format_change(metric: str, change: float | None, relative: float | None) -> str:
    """Rates change in percentage points; everything else relatively (or absolutely
    when there was nothing before)."""
    if change is None:
        return "new" if relative is None else "–"
    if metric.endswith(RATE_SUFFIX):
        return f"{change * 100:+.1f} pts"
    if relative is not None:
        return f"{relative * 100:+.0f}%"
    sign = "+" if change >= 0 else "-"
    return sign + format_value(metric, abs(change))


def label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
