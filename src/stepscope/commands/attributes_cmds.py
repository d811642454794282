"""`stepscope attributes [--unmapped]`: the span attribute keys in the store."""

from __future__ import annotations

import click

from stepscope.analytics.attributes import attribute_keys
from stepscope.cli import cli, config_option, db_option, emit, format_option, get_config, open_store


@cli.command()
@click.option("--unmapped", is_flag=True,
              help="Only keys that no stepscope field reads (and that are not generic "
                   "transport or SDK keys): what an instrumentation sends that stepscope "
                   "does not understand.")
@db_option
@config_option
@format_option()
def attributes(unmapped: bool, db: str, config_path: str | None, fmt: str) -> None:
    """List the span attribute keys in the store, with counts and an example value."""
    config = get_config(config_path)
    with open_store(db).connect() as con:
        rows = attribute_keys(con, config, unmapped=unmapped)
    emit(rows, fmt)
