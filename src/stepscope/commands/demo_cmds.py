"""`stepscope demo`: the bundled sample in a store of its own, then the dashboard.

The first run ingests the sample (a few seconds); later runs find the store and go
straight to the dashboard, so re-running is fast and never duplicates data (the store
deduplicates anyway). `--now` is set to the newest span time so the fixed sample
looks live: "last 24 hours" means the sample's last day.
"""

from __future__ import annotations

import click

from stepscope.cli import cli, config_option, emit, get_config
from stepscope.demo import DEFAULT_DEMO_DB, prepare_demo_store


@cli.command()
@click.option("--db", default=DEFAULT_DEMO_DB, show_default=True,
              help="Where the demo store lives (separate from your own store).")
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the dashboard binds.")
@click.option("--port", default=8501, show_default=True, type=int, help="Dashboard port.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser (headless machines).")
@click.option("--no-dashboard", is_flag=True, help="Only build the demo store and print what it holds.")
def demo(db: str, config_path: str | None, host: str, port: int, no_browser: bool,
         no_dashboard: bool) -> None:
    """Load the bundled sample traces and open the dashboard on them."""
    config = get_config(config_path)
    summary = prepare_demo_store(db, config)
    emit(summary, "table")
    if no_dashboard:
        return
    from stepscope.dashboard.launch import run_dashboard

    run_dashboard(db=db, config_path=config_path, host=host, port=port,
                  now=summary["now"], open_browser=not no_browser)
