"""`stepscope demo` builds its store from the bundled sample once, then reuses it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stepscope.cli import cli
from stepscope.config import Config
from stepscope.demo import prepare_demo_store


@pytest.mark.slow
def test_demo_store_is_built_once_and_now_is_the_newest_span(tmp_path):
    db = tmp_path / "demo"
    first = prepare_demo_store(db, Config())
    assert first["spans_loaded_now"] == first["steps"] > 40_000
    assert first["runs"] > 7_000
    assert first["now"].startswith("2026-11-15T")
    again = prepare_demo_store(db, Config())
    assert again["spans_loaded_now"] == 0
    assert again["steps"] == first["steps"]
    assert again["now"] == first["now"]

    result = CliRunner().invoke(cli, ["demo", "--db", str(db), "--no-dashboard"])
    assert result.exit_code == 0, result.output
    assert "spans_loaded_now  0" in result.output
