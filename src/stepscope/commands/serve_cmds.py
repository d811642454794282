"""`stepscope serve`: receive OTLP/HTTP traces and logs into the store, live."""

from __future__ import annotations

import sys

import click

from stepscope.cli import EXIT_USAGE, cli, config_option, db_option, get_config
from stepscope.server.limits import MIB, ServeLimits


@cli.command()
@db_option
@config_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback should come with --token.")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (4318 is the OTLP/HTTP default; 0 picks a free one).")
@click.option("--token", envvar="STEPSCOPE_TOKEN", default=None, show_envvar=True,
              help="Require 'Authorization: Bearer TOKEN' on every request.")
@click.option("--spool", "spool_dir", default=None, type=click.Path(file_okay=False),
              help="Write-ahead spool directory (default: DB/spool).")
@click.option("--max-spool-mb", default=ServeLimits.max_spool_bytes // MIB, show_default=True,
              type=click.IntRange(1), help="Answer 503 once this much is acknowledged but unstored.")
@click.option("--max-body-mb", default=ServeLimits.max_body_bytes // MIB, show_default=True,
              type=click.IntRange(1), help="Largest request body accepted, as sent (413 above).")
@click.option("--workers", default=0, show_default="one per core", type=click.IntRange(0),
              help="Processes that decode and store batches (0: one per core).")
def serve(db: str, config_path: str | None, host: str, port: int, token: str | None,
          spool_dir: str | None, max_spool_mb: int, max_body_mb: int, workers: int) -> None:
    """Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces, /v1/logs).

    Point an exporter at http://HOST:PORT (OTEL_EXPORTER_OTLP_ENDPOINT). Protobuf and
    JSON bodies, gzip/deflate/zstd. What is answered 200 is on disk first (a write-ahead
    spool) and reaches the store within about a second; readers (kpis, dashboard) see it
    without restarting. SIGTERM or Ctrl-C stores everything received, then exits.
    """
    from stepscope.server.app import ServeError, ServeOptions
    from stepscope.server.app import serve as run

    config = get_config(config_path)
    defaults = ServeLimits()
    limits = ServeLimits(
        max_spool_bytes=max_spool_mb * MIB,
        max_body_bytes=max_body_mb * MIB,
        max_decompressed_bytes=max(defaults.max_decompressed_bytes, max_body_mb * MIB),
        workers=workers,
    )
    options = ServeOptions(db=db, config=config, host=host, port=port, token=token or None,
                           spool_dir=spool_dir, limits=limits)
    try:
        status = run(options)
    except ServeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(status)
