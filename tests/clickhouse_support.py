"""ClickHouse stores for tests, on chdb (the ClickHouse engine in-process).

chdb runs one data directory per process, so the whole test session shares one
(`chdb_root`) and tests keep apart by database: `chdb_url(root, "name")`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

# Sums of floats in another order differ in the last bits; nothing else may differ.
# Dollar figures are rounded to 1e-11 (stepscope.analytics.runner.USD_DECIMALS), so that
# noise can move one by that much.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 2e-11


def chdb_url(root: Path, database: str) -> str:
    return f"chdb://{root}?database={database}"


def assert_same_frame(duck: pl.DataFrame, click: pl.DataFrame) -> None:
    """Equal frames, floats to RELATIVE_TOLERANCE (list and struct columns included)."""
    assert duck.columns == click.columns
    assert duck.height == click.height, (duck, click)
    assert_frame_equal(duck, click, check_exact=False, rel_tol=RELATIVE_TOLERANCE,
                       abs_tol=ABSOLUTE_TOLERANCE)


def assert_same_value(duck: Any, click: Any, where: str = "") -> None:
    """Equal nested values (dicts, lists, frames), floats to RELATIVE_TOLERANCE."""
    if isinstance(duck, pl.DataFrame):
        assert_same_frame(duck, click)
    elif isinstance(duck, dict):
        assert isinstance(click, dict) and duck.keys() == click.keys(), where
        for key in duck:
            assert_same_value(duck[key], click[key], f"{where}.{key}")
    elif isinstance(duck, list | tuple):
        assert isinstance(click, list | tuple) and len(duck) == len(click), where
        for i, (a, b) in enumerate(zip(duck, click, strict=True)):
            assert_same_value(a, b, f"{where}[{i}]")
    elif isinstance(duck, float) and isinstance(click, float):
        assert math.isclose(duck, click, rel_tol=RELATIVE_TOLERANCE,
                       abs_tol=ABSOLUTE_TOLERANCE), (where, duck, click)
    else:
        assert duck == click, (where, duck, click)
