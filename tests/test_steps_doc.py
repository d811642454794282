"""docs/steps.md describes every column and every attribute key the mapping reads."""

from __future__ import annotations

from pathlib import Path

from stepscope.ingest import conventions as cv
from stepscope.schema import STEP_COLUMNS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "steps.md").read_text()


def test_every_column_is_in_the_table_with_its_type():
    missing = [c.name for c in STEP_COLUMNS if f"| `{c.name}` | {c.sql_type} |" not in DOC]
    assert missing == []


def test_every_mapped_key_is_documented():
    missing = [k for k in cv.all_mapped_keys() if f"`{k}`" not in DOC and f"`{k} " not in DOC]
    assert missing == []


def test_every_kind_source_is_documented():
    for key, mapping in cv.KIND_SOURCES:
        assert f"`{key}`" in DOC
        for value in mapping:
            assert value.lower() in DOC.lower(), (key, value)
