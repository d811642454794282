"""CLI commands, one module per area; each attaches its commands to `stepscope.cli.cli`."""
