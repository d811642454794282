"""`stepscope kpis`, `compare`, `report`, `spend` and `prices`: thin calls into
`stepscope.analytics`, which the dashboard and alerts call too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl

from stepscope.analytics import pricing
from stepscope.analytics.compare import compare, parse_selection
from stepscope.analytics.explore import COST_KEYS, cost_breakdown, price_table
from stepscope.analytics.filters import KPI_GROUP_KEYS, FilterError, Filters
from stepscope.analytics.kpis import (
    MODEL_GROUP_NOTE,
    RUNNING_NOTE,
    STEP_GROUP_EXPR,
    kpis,
    step_kpis,
)
from stepscope.cli import (
    cli,
    config_option,
    db_option,
    emit,
    format_option,
    get_config,
    instant_option_value,
    now_option,
    open_store,
    resolve_now,
)
from stepscope.config import Config
from stepscope.store import Store
from stepscope.timeparse import utc_now

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(f: F) -> F:
    """--since/--until on the run's start, and the run filters every query command takes."""
    options = [
        click.option("--since", help="Runs that started at or after this instant "
                                     "(ISO-8601 or e.g. now-7d)."),
        click.option("--until", help="Runs that started before this instant."),
        click.option("--workflow", "workflows", multiple=True, help="Only this workflow (repeatable)."),
        click.option("--environment", "environments", multiple=True,
                     help="Only this deployment environment (repeatable)."),
        click.option("--service-version", "service_versions", multiple=True,
                     help="Only this service version (repeatable)."),
        click.option("--model", "models", multiple=True,
                     help="Only runs that used this model (repeatable)."),
        click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _filters(now: datetime | None, since: str | None, until: str | None,
             **values: tuple[str, ...]) -> Filters:
    return Filters(
        since=instant_option_value(since, "--since", now),
        until=instant_option_value(until, "--until", now),
        **{k: tuple(v) for k, v in values.items()},
    )


def _split(values: Sequence[str]) -> tuple[str, ...]:
    """`--by workflow,day --by model` -> (workflow, day, model)."""
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def _usage(flag: str) -> Callable[[FilterError], click.BadParameter]:
    return lambda exc: click.BadParameter(str(exc), param_hint=flag)


# -- kpis -------------------------------------------------------------------------------


@cli.command("kpis")
@db_option
@config_option
@filter_options
@click.option("--by", "by", multiple=True, default=("workflow",), show_default=True,
              help="Group keys, comma-separated or repeated: "
                   f"{', '.join(KPI_GROUP_KEYS)}; 'none' for one row (with --steps: model or "
                   "tool, plus workflow, provider, service_version, day).")
@click.option("--steps", is_flag=True,
              help="Step-level figures per model or tool instead of run KPIs.")
@now_option
@format_option()
def kpis_command(db: str, config_path: str | None, since: str | None, until: str | None,
                 workflows: tuple[str, ...], environments: tuple[str, ...],
                 service_versions: tuple[str, ...], models: tuple[str, ...],
                 tenants: tuple[str, ...], by: tuple[str, ...], steps: bool,
                 now_text: str | None, fmt: str) -> None:
    """Per-workflow KPIs: completion, escalation, tool success, latency, tokens, cost.

    A run is one trace; runs still running count in runs and sums but in no rate.
    Rates with no denominator are empty (null in JSON). Cost is priced at query time;
    calls without a price count in unpriced_llm_calls, never as $0.
    """
    config = get_config(config_path)
    now = resolve_now(now_text)
    filters = _filters(now, since, until, workflows=workflows, environments=environments,
                       service_versions=service_versions, models=models, tenants=tenants)
    keys = tuple(k for k in _split(by) if k != "none")
    if steps and keys == ("workflow",):
        keys = ("model",)
    allowed = tuple(STEP_GROUP_EXPR) if steps else KPI_GROUP_KEYS
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise click.BadParameter(f"unknown group key {unknown[0]!r}; choose from "
                                 f"{', '.join(allowed)}", param_hint="--by")
    with open_store(db).connect() as con:
        try:
            frame = (step_kpis if steps else kpis)(con, filters, keys, config=config)
        except FilterError as exc:
            raise _usage("--by")(exc) from None
    emit(frame, fmt)
    if fmt == "table" and not steps:
        notes = [RUNNING_NOTE] + ([MODEL_GROUP_NOTE] if "model" in keys else [])
        click.echo("\n" + "\n".join(f"note: {n}" for n in notes))


# -- compare ----------------------------------------------------------------------------


@cli.command("compare")
@db_option
@config_option
@click.option("--baseline", required=True,
              help="A window (START..END, e.g. now-14d..now-7d) or KEY=VALUE such as "
                   "service_version=1.4.0; combine with commas.")
@click.option("--current", required=True, help="The selection to compare with the baseline.")
@filter_options
@click.option("--by", "by", multiple=True, default=("workflow",), show_default=True,
              help=f"Group keys, comma-separated or repeated: {', '.join(KPI_GROUP_KEYS)}; "
                   "'none' for one group.")
@click.option("--metric", "metrics", multiple=True, help="Only these KPIs (repeatable).")
@now_option
@format_option()
def compare_command(db: str, config_path: str | None, baseline: str, current: str,
                    since: str | None, until: str | None, workflows: tuple[str, ...],
                    environments: tuple[str, ...], service_versions: tuple[str, ...],
                    models: tuple[str, ...], tenants: tuple[str, ...], by: tuple[str, ...],
                    metrics: tuple[str, ...], now_text: str | None, fmt: str) -> None:
    """KPIs of two selections side by side, with absolute and relative changes.

    E.g. week over week: --baseline now-14d..now-7d --current now-7d..now; release
    against release: --baseline service_version=1.3.0 --current service_version=1.4.0
    (with --since/--until applying to both). assessment says whether a change is better
    or worse for the KPI (empty for volumes such as runs or tokens).
    """
    config = get_config(config_path)
    now = resolve_now(now_text)
    base = _filters(now, since, until, workflows=workflows, environments=environments,
                    service_versions=service_versions, models=models, tenants=tenants)
    keys = tuple(k for k in _split(by) if k != "none")
    try:
        sides = [parse_selection(text, base, now) for text in (baseline, current)]
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--baseline/--current") from None
    with open_store(db).connect() as con:
        try:
            frame = compare(con, sides[0], sides[1], by=keys, config=config,
                            **({"metrics": _split(metrics)} if metrics else {}))
        except FilterError as exc:
            raise _usage("--by/--metric")(exc) from None
    emit(frame, fmt)


# -- report -----------------------------------------------------------------------------


@cli.command("report")
@db_option
@config_option
@click.option("--week", help="ISO week, e.g. 2026-W47 (UTC; default: the last full week).")
@click.option("--workflow", "workflows", multiple=True, help="Only this workflow (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file, not stdout.")
@now_option
@format_option("md", "html", default="md")
def report_command(db: str, config_path: str | None, week: str | None,
                   workflows: tuple[str, ...], out: str | None, now_text: str | None,
                   fmt: str) -> None:
    """The weekly review for leads: per-workflow KPIs with week-over-week changes, top
    cost drivers, top failure reasons and notable changes (Markdown or an HTML e-mail)."""
    from stepscope.analytics.report import weekly_report
    from stepscope.analytics.report_render import render

    config = get_config(config_path)
    week = week or last_full_week(resolve_now(now_text) or utc_now())
    with open_store(db).connect() as con:
        report = weekly_report(con, week, config, Filters(workflows=workflows))
    text = render(report, fmt)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote the {report.week} review to {out}", err=True)
    else:
        click.echo(text, nl=False)


def last_full_week(now: datetime) -> str:
    year, week, _ = (now - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"


# -- spend ------------------------------------------------------------------------------


@cli.command("spend")
@db_option
@config_option
@filter_options
@click.option("--by", "by", multiple=True, default=("model",), show_default=True,
              help=f"Keys, comma-separated or repeated: {', '.join(COST_KEYS)}.")
@click.option("--bucket", type=click.Choice(["hour", "day", "week", "month", "total"]),
              default="day", show_default=True, help="Time bucket (by the run's start, UTC).")
@now_option
@format_option()
def spend_command(db: str, config_path: str | None, since: str | None, until: str | None,
                  workflows: tuple[str, ...], environments: tuple[str, ...],
                  service_versions: tuple[str, ...], models: tuple[str, ...],
                  tenants: tuple[str, ...], by: tuple[str, ...], bucket: str,
                  now_text: str | None, fmt: str) -> None:
    """Spend by model, workflow or tenant over time, with each figure's price sources
    and the cost spans reported themselves beside ours."""
    config = get_config(config_path)
    now = resolve_now(now_text)
    filters = _filters(now, since, until, workflows=workflows, environments=environments,
                       service_versions=service_versions, models=models, tenants=tenants)
    with open_store(db).connect() as con:
        try:
            frame = cost_breakdown(con, filters, by=_split(by),
                                   bucket=None if bucket == "total" else bucket, config=config)
        except FilterError as exc:
            raise _usage("--by")(exc) from None
    if bucket == "total":
        frame = frame.drop("bucket_start")
    emit(frame, fmt)


# -- prices -----------------------------------------------------------------------------


@cli.command("prices")
@db_option
@config_option
@click.option("--model", "models", multiple=True,
              help="Show the prices of this model (repeatable); without it, of every model "
                   "in the store.")
@click.option("--provider", help="With --model: the provider (default: inferred).")
@click.option("--at", "at_text", help="Only the prices in force at this instant.")
@now_option
@format_option()
def prices_command(db: str, config_path: str | None, models: tuple[str, ...],
                   provider: str | None, at_text: str | None, now_text: str | None,
                   fmt: str) -> None:
    """The resolved price table with the source of every rate (USD per million tokens).

    User [[prices]] of the configuration win over the genai-prices snapshot where they
    are in force. Models no source knows are listed as unpriced.
    """
    config = get_config(config_path)
    now = resolve_now(now_text)
    at = instant_option_value(at_text, "--at", now) if at_text else None
    frame = resolved_prices(db, config, models, provider)
    if at is not None:
        frame = _in_force(frame, at)
    emit(frame, fmt)


def resolved_prices(db: str, config: Config, models: Sequence[str],
                    provider: str | None) -> pl.DataFrame:
    if models:
        keys = [pricing.PriceKey(provider, m, None) for m in models]
        return pricing.describe_price_table(pricing.build_price_table(keys, config))
    store: Store = open_store(db)
    with store.connect() as con:
        return price_table(con, config)


def _in_force(frame: pl.DataFrame, at: datetime) -> pl.DataFrame:
    day = at.date()
    return frame.filter(
        (pl.col("effective_from").is_null() | (pl.col("effective_from") <= day))
        & (pl.col("effective_to").is_null() | (pl.col("effective_to") > day))
    )

