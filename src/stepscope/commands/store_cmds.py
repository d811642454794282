"""Store maintenance: `stepscope info`, `prune`, `compact` and `export`."""

from __future__ import annotations

import sys
from datetime import UTC

import click

from stepscope import store_export
from stepscope.cli import (
    EXIT_USAGE,
    cli,
    db_option,
    duration_option_value,
    emit,
    format_option,
    instant_option_value,
    now_option,
    open_store,
    resolve_now,
)
from stepscope.timeparse import iso_utc, utc_now


@cli.command()
@db_option
@format_option("table", "json")
def info(db: str, fmt: str) -> None:
    """Describe the store: schema version, segments, rows and time span."""
    store = open_store(db)
    emit(store_export.describe(store), fmt)


@cli.command()
@db_option
@click.option("--older-than", required=True, help="Drop runs that ended before now minus this, e.g. 30d.")
@now_option
@format_option("table", "json")
def prune(db: str, older_than: str, now_text: str | None, fmt: str) -> None:
    """Enforce retention: delete runs older than a duration."""
    age = duration_option_value(older_than, "--older-than")
    now = resolve_now(now_text) or utc_now()
    cutoff = now - age
    removed = open_store(db).delete_steps_before(int(cutoff.astimezone(UTC).timestamp() * 1e9))
    emit({"cutoff": iso_utc(cutoff), "steps_deleted": removed}, fmt)


@cli.command()
@db_option
@click.option("--force", is_flag=True, help="Merge every small segment, however few.")
def compact(db: str, force: bool) -> None:
    """Merge small segments into larger, time-sorted ones (ingest does this as it goes)."""
    merged = open_store(db).compact(force=force)
    click.echo(f"merged {merged} segments")


@cli.command()
@db_option
@click.option("--since", help="Only steps starting at or after this instant (ISO-8601 or now-7d).")
@click.option("--until", help="Only steps starting before this instant.")
@click.option("--workflow", multiple=True, help="Only runs of this workflow (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@now_option
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv",
              show_default=True, help="File format.")
def export(db: str, since: str | None, until: str | None, workflow: tuple[str, ...],
           out: str | None, now_text: str | None, fmt: str) -> None:
    """Write the normalised steps for analysis elsewhere (CSV to stdout without --out)."""
    now = resolve_now(now_text)
    start = instant_option_value(since, "--since", now)
    end = instant_option_value(until, "--until", now)
    if fmt == "parquet" and not out:
        click.echo("Error: --format parquet needs --out FILE", err=True)
        sys.exit(EXIT_USAGE)
    rows = store_export.export_steps(open_store(db), out, fmt, start, end, list(workflow))
    if out:
        click.echo(f"wrote {rows} steps to {out}", err=True)
