"""`stepscope dashboard`: the Streamlit dashboard over a store."""

from __future__ import annotations

import sys

import click

from stepscope.cli import (
    EXIT_USAGE,
    cli,
    config_option,
    db_option,
    get_config,
    now_option,
    resolve_now,
)
from stepscope.clickhouse.location import is_clickhouse_url, parse_location
from stepscope.store import Store, StoreError
from stepscope.timeparse import iso_utc


@cli.command()
@db_option
@config_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but localhost is reachable by others, "
                   "and the dashboard has no login.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@now_option
@click.option("--no-browser", is_flag=True, help="Do not open a browser (headless machines).")
def dashboard(db: str, config_path: str | None, host: str, port: int, now_text: str | None,
              no_browser: bool) -> None:
    """Open the dashboard: KPIs, cost, reliability, drift, alerts and a trace explorer."""
    get_config(config_path)  # a broken configuration is reported here, not in the browser
    now = resolve_now(now_text)
    if is_clickhouse_url(db):
        # The dashboard's own process opens the store (chdb allows one process per
        # directory); only the URL is checked here.
        parse_location(db)
    else:
        store = Store(db)
        if store.path.exists() and not store.exists:
            raise StoreError(f"{store.path}: not a stepscope store; pass --db a store directory")
        if not store.exists:
            click.echo(f"note: no store at {store.path} yet; the dashboard shows data once "
                       f"`stepscope ingest PATH --db {store.path}` has loaded some", err=True)
    from stepscope.dashboard.launch import run_dashboard

    status = run_dashboard(db=db, config_path=config_path, host=host, port=port,
                           now=iso_utc(now) if now else None, open_browser=not no_browser)
    if status not in (0, None):
        click.echo(f"Error: the dashboard stopped with status {status}", err=True)
        sys.exit(EXIT_USAGE if status == EXIT_USAGE else status)
