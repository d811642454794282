"""The command reference is generated from --help and must match the commands."""

from __future__ import annotations

from pathlib import Path

from stepscope.cli_docs import command_paths, generate

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date():
    assert DOCS.read_text() == generate(), (
        "docs/cli.md is stale: run `python -m stepscope.cli_docs > docs/cli.md`"
    )


def test_every_command_has_a_section_and_a_description():
    text = DOCS.read_text()
    for path in command_paths():
        assert f"## `{path}`" in text
    from stepscope.cli import cli

    for name, command in cli.commands.items():
        assert command.help, f"stepscope {name} has no help text"


def test_lazy_command_table_matches_what_the_modules_define():
    import importlib

    from stepscope.cli import COMMAND_MODULES, cli

    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"stepscope.commands.{module}")
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)
