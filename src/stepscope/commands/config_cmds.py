"""`stepscope config check|show`: validate a configuration file, print what is in force."""

from __future__ import annotations

import dataclasses

import click

from stepscope.cli import cli, config_option, emit, format_option, get_config


@cli.group()
def config() -> None:
    """Check and show the configuration (stepscope.toml)."""


@config.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate the configuration file; exit 2 naming the key when it is wrong."""
    loaded = get_config(config_path)
    click.echo(f"{loaded.source or 'built-in defaults (no stepscope.toml)'} is valid")


@config.command("show")
@config_option
@format_option("table", "json")
def config_show(config_path: str | None, fmt: str) -> None:
    """Print the settings in force, defaults included."""
    settings = dataclasses.asdict(get_config(config_path))
    settings.pop("source", None)
    if fmt == "json":
        emit(settings, "json")
        return
    flat = {}
    for section, values in settings.items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[section] = values
    emit(flat, "table")
