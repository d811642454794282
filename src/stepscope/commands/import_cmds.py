"""`stepscope import ...`: spans from where other pipelines already keep them."""

from __future__ import annotations

import sys

import click

from stepscope.cli import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
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
from stepscope.commands.ingest_cmds import ProgressBar


@cli.group("import")
def import_group() -> None:
    """Import spans from stores other pipelines write (the Collector's ClickHouse table)."""


@import_group.command("clickhouse-otel")
@click.option("--source", "source_url", required=True, metavar="URL",
              help="The ClickHouse the OpenTelemetry Collector exports to, in the forms --db "
              "takes: clickhouse://user@host:8123/otel or chdb:///dir?database=otel "
              "(database `otel` when the URL names none).")
@click.option("--table", default="otel_traces", show_default=True,
              help="The exporter's traces table (or a view with its columns).")
@click.option("--since", "since_text", default=None,
              help="Only spans that started at or after this instant (ISO-8601, or now-2h).")
@click.option("--until", "until_text", default=None,
              help="Only spans that started before this instant.")
@db_option
@config_option
@now_option
@format_option("table", "json")
def import_clickhouse_otel(source_url: str, table: str, since_text: str | None,
                           until_text: str | None, db: str, config_path: str | None,
                           now_text: str | None, fmt: str) -> None:
    """Import spans from the Collector clickhouseexporter's `otel_traces` table.

    Spans are read in batches of at most 50,000, oldest first, and normalised with
    the same convention rules, privacy policy and attribute maps as `stepscope ingest`.
    Spans already stored count as duplicates, so an import can run again over the same
    or an overlapping window: run `--since now-2h` every hour to keep a store current
    (the overlap catches spans the Collector wrote late).

    Exit status 2 when the source cannot be read as the exporter's table (unreachable,
    no such table, columns missing), 1 when some spans were rejected (bad ids).
    """
    from stepscope.ingest.otel_import import OtelSource, SourceError, import_otel_table

    now = resolve_now(now_text)
    since = instant_option_value(since_text, "--since", now)
    until = instant_option_value(until_text, "--until", now)
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    config = get_config(config_path)
    try:
        source = OtelSource.open(source_url, table)
    except SourceError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    bar = ProgressBar("importing") if sys.stdout.isatty() else None
    try:
        store = open_store(db, create=True)
        report = import_otel_table(store, source, config, since=since, until=until, progress=bar)
    except SourceError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        source.close()
        if bar is not None:
            bar.close()
    if fmt == "json":
        emit(report.summary(), "json")
    else:
        for example in report.rejected_examples:
            click.echo(f"rejected {example}", err=True)
        emit({
            "source": report.source,
            "spans_read": report.spans_read,
            "spans_stored": report.spans_stored,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "newest_span": report.newest_span,
            "seconds": round(report.seconds, 2),
            "spans_per_second": round(report.spans_per_second),
        }, "table")
    sys.exit(EXIT_REJECTED if report.rejected else EXIT_OK)
