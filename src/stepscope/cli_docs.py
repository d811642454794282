"""Generate `docs/cli.md` from every command's `--help`, so the reference cannot drift.

`python -m stepscope.cli_docs > docs/cli.md` rewrites it; `tests/test_docs.py` fails when
the file differs from what the commands say about themselves.
"""

from __future__ import annotations

import click

from stepscope.cli import cli

HEADER = """# Command reference

Generated from `stepscope ... --help` by `python -m stepscope.cli_docs > docs/cli.md`;
do not edit by hand.
"""


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(click.Context(command))):
            sub = command.get_command(click.Context(command), name)
            if sub is not None and not sub.hidden:
                found.extend(_walk(sub, [*path, name]))
    return found


def help_text(path: list[str], command: click.Command) -> str:
    parent = None
    ctx = click.Context(cli, info_name="stepscope", terminal_width=100, max_content_width=100,
                        help_option_names=["-h", "--help"])
    for name in path:
        parent = ctx
        group = parent.command
        assert isinstance(group, click.Group)
        ctx = click.Context(group.get_command(parent, name), info_name=name, parent=parent,
                            terminal_width=100, max_content_width=100)
    return command.get_help(ctx)


def generate() -> str:
    parts = [HEADER]
    for path, command in _walk(cli, []):
        title = " ".join(["stepscope", *path])
        parts.append(f"\n## `{title}`\n\n```\n{help_text(path, command).rstrip()}\n```\n")
    return "".join(parts)


def command_paths() -> list[str]:
    return [" ".join(["stepscope", *path]) for path, _ in _walk(cli, [])]


if __name__ == "__main__":
    print(generate(), end="")
