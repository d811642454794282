"""`stepscope clusters` and `stepscope drift`: what fails, and what changed."""

from __future__ import annotations

import click
import polars as pl

from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.drift import drift_findings, finding_records, parse_side, resolve_sides
from stepscope.analytics.filters import Filters
from stepscope.cli import (
    cli,
    config_option,
    db_option,
    duration_option_value,
    emit,
    format_option,
    get_config,
    instant_option_value,
    now_option,
    open_store,
    resolve_now,
    window_option_value,
)
from stepscope.timeparse import TimeSpecError, iso_utc

_SPARKS = " ▁▂▃▄▅▆▇█"


SPARKLINE_WIDTH = 40


def sparkline(counts: list[int], width: int = SPARKLINE_WIDTH) -> str:
    """A trend as at most `width` block characters: adjacent buckets summed, then scaled
    to the largest."""
    if not counts:
        return ""
    per = -(-len(counts) // width)
    sums = [sum(counts[i:i + per]) for i in range(0, len(counts), per)]
    top = max(sums)
    if top <= 0:
        return " " * len(sums)
    steps = len(_SPARKS) - 1
    return "".join(_SPARKS[0 if c == 0 else max(1, round(c / top * steps))] for c in sums)


def _cluster_table(frame: pl.DataFrame) -> list[dict]:
    return [{
        "cluster_id": row["cluster_id"],
        "count": row["count"],
        "new": "new" if row["is_new"] else "",
        "error_type": row["error_type"],
        "http": row["http_status"],
        "tools": ", ".join(row["tools"]),
        "workflows": ", ".join(row["workflows"]),
        "first_seen": iso_utc(row["first_seen"]),
        "last_seen": iso_utc(row["last_seen"]),
        "trend": sparkline(row["trend"]),
        "label": row["label"],
    } for row in frame.to_dicts()]


@cli.command()
@db_option
@click.option("--since", help="Failures at or after this instant (ISO-8601 or now-7d); default: all.")
@click.option("--until", help="Failures before this instant; default: all.")
@click.option("--workflow", multiple=True, help="Only runs of this workflow (repeatable).")
@click.option("--baseline", help="Window a failure must be absent from to count as new "
              "(START..END or a duration); default: the 7 days before --since, or without "
              "--since the 7 days before the last 24 hours.")
@click.option("--bucket", help="Trend bucket, e.g. 1h or 1d; default: the finest that "
              "shows the window in at most 400 points.")
@now_option
@format_option()
def clusters(db: str, since: str | None, until: str | None, workflow: tuple[str, ...],
             baseline: str | None, bucket: str | None, now_text: str | None, fmt: str) -> None:
    """Failure clusters: every failed step grouped with the same failure, most frequent first.

    Messages are normalised (ids, numbers, URLs, e-mails, quoted values, timestamps
    masked); each failure has a stable id, a hash of its error type, HTTP status, tool and
    message template, and near-identical templates are shown together (member_ids).
    """
    now = resolve_now(now_text)
    filters = Filters(
        since=instant_option_value(since, "--since", now),
        until=instant_option_value(until, "--until", now),
        workflows=tuple(workflow),
    )
    base = window_option_value(baseline, "--baseline", now) if baseline else None
    step = duration_option_value(bucket, "--bucket") if bucket else None
    with open_store(db).connect() as con:
        frame = failure_clusters(con, filters, baseline=base, now=now, bucket=step)
    emit(_cluster_table(frame) if fmt == "table" else frame, fmt)


def _headline(summary: dict) -> str:
    statistic = summary.get("statistic")
    if statistic == "shares":
        shares = summary.get("shares") or {}
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:2]
        return ", ".join(f"{k} {v:.0%}" for k, v in top)
    if statistic == "rate":
        return f"{summary['rate']:.1%} of {summary['n']}"
    value = summary.get(statistic)
    return f"{statistic} {value:.4g} (n={summary['n']})" if value is not None else ""


def _drift_table(records: list[dict]) -> list[dict]:
    return [{
        "severity": r["severity"],
        "metric": r["metric"],
        "workflow": r["workflow"],
        "model": r["model"],
        "baseline": _headline(r["baseline"]),
        "current": _headline(r["current"]),
        "effect": round(r["effect_size"], 3),
        "p_value": r["p_value"],
        "likely_cause": r["likely_cause"],
    } for r in records]


def _side_value(text: str | None, flag: str, now):
    if text is None:
        return None
    try:
        return parse_side(text, now)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


@cli.command()
@db_option
@config_option
@click.option("--baseline", help="START..END, a duration, or service_version=V; default: the 7 "
              "days before the current window.")
@click.option("--current", help="START..END, a duration, or service_version=V; default: the "
              "last 24 hours.")
@click.option("--workflow", multiple=True, help="Only runs of this workflow (repeatable).")
@now_option
@format_option()
def drift(db: str, config_path: str | None, baseline: str | None, current: str | None,
          workflow: tuple[str, ...], now_text: str | None, fmt: str) -> None:
    """Drift findings: significant, material changes from a baseline to a current window.

    Per workflow and model: run and call latency, tokens per call, cost per run, error
    rates, tool-call mix, `length` finishes, steps per run and the responded model
    version. Kolmogorov-Smirnov and chi-square tests, Holm-corrected to a 1% family-wise
    error rate, and at least a 20% change; each finding names a likely cause when a new
    service version, model or responded model version started with it.
    """
    now = resolve_now(now_text)
    config = get_config(config_path)
    base = _side_value(baseline, "--baseline", now)
    cur = _side_value(current, "--current", now)
    try:
        base, cur = resolve_sides(base, cur, now)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--baseline") from None
    with open_store(db).connect() as con:
        frame = drift_findings(con, base, cur, filters=Filters(workflows=tuple(workflow)),
                               now=now, config=config)
    records = finding_records(frame)
    emit(_drift_table(records) if fmt == "table" else records, fmt)
