"""The `stepscope` command: a thin layer over the library.

Each command parses its options and calls one library function; commands live in
`stepscope.commands.*` (one module per area) and attach themselves to the `cli` group.
Errors the user can fix (bad flag, bad configuration, unusable store) exit with status 2
and a message naming the flag, file or field.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from stepscope import __version__, stores
from stepscope.clickhouse.client import ClickHouseError
from stepscope.clickhouse.location import LocationError
from stepscope.config import Config, ConfigError, load_config
from stepscope.output import FORMATS, render
from stepscope.store import StoreError, default_db_path
from stepscope.stores import AnyStore
from stepscope.timeparse import TimeSpecError, parse_duration, parse_instant, parse_window

F = TypeVar("F", bound=Callable[..., Any])

# Which module under stepscope.commands defines each command. A command's module is
# imported only when that command runs (or when help lists every command), so that
# `stepscope serve` does not pay for importing the dashboard or scikit-learn.
COMMAND_MODULES: dict[str, str] = {
    "info": "store_cmds",
    "prune": "store_cmds",
    "compact": "store_cmds",
    "export": "store_cmds",
    "config": "config_cmds",
    "ingest": "ingest_cmds",
    "import": "import_cmds",
    "attributes": "attributes_cmds",
    "sample": "sample_cmds",
    "kpis": "analytics_cmds",
    "compare": "analytics_cmds",
    "report": "analytics_cmds",
    "spend": "analytics_cmds",
    "prices": "analytics_cmds",
    "clusters": "clusters_cmds",
    "drift": "clusters_cmds",
    "dashboard": "dashboard_cmds",
    "demo": "demo_cmds",
    "serve": "serve_cmds",
    "alerts": "alerts_cmds",
}

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class StepscopeGroup(click.Group):
    """Loads commands lazily, and turns the library's user-fixable errors into exit
    status 2 with a clear message."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"stepscope.commands.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, StoreError, TimeSpecError, LocationError) as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except ClickHouseError as exc:
            click.echo(f"Error: ClickHouse: {exc}", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=StepscopeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stepscope")
def cli() -> None:
    """Observability and cost analytics for AI agents.

    Load OpenTelemetry traces of model and tool calls, then see per-workflow KPIs, cost
    per completed task, failure clusters and drift, in the terminal or the dashboard.
    """


# -- shared options ---------------------------------------------------------------------


def db_option(f: F) -> F:
    return click.option(
        "--db",
        default=default_db_path,
        show_default="$STEPSCOPE_DB or ./stepscope.duckdb",
        help="The store: a directory of Parquet segments (created on first write), or a "
        "ClickHouse database: clickhouse://user@host:8123/db, or chdb:///dir for ClickHouse "
        "in-process.",
    )(f)


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        default=None,
        type=click.Path(dir_okay=False),
        help="Configuration file (default ./stepscope.toml when it exists).",
    )(f)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    allowed = choices or FORMATS

    def decorate(f: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(allowed),
            default=default,
            show_default=True,
            help="Output format.",
        )(f)

    return decorate


def now_option(f: F) -> F:
    return click.option(
        "--now",
        "now_text",
        default=None,
        envvar="STEPSCOPE_NOW",
        help="The instant relative times end at (ISO-8601; default: the wall clock).",
    )(f)


# -- option value helpers ---------------------------------------------------------------


def get_config(config_path: str | None) -> Config:
    return load_config(config_path)


def open_store(db: str, create: bool = False) -> AnyStore:
    return stores.open_store(db, create=create)


def resolve_now(now_text: str | None) -> datetime | None:
    return parse_instant(now_text, None) if now_text else None


def instant_option_value(value: str | None, flag: str, now: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, now)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def window_option_value(value: str, flag: str, now: datetime | None):
    try:
        return parse_window(value, now)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def duration_option_value(value: str, flag: str):
    try:
        return parse_duration(value)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def emit(data: Any, fmt: str) -> None:
    """Print rows or a summary object in the chosen format."""
    text = render(data, fmt)
    if text:
        click.echo(text)


def main() -> None:
    cli(prog_name="stepscope")


if __name__ == "__main__":
    sys.exit(main())
