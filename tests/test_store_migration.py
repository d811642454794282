"""A store written by schema version 1 is migrated in place, not misread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from stepscope.schema import SCHEMA_VERSION, STEP_COLUMN_NAMES
from stepscope.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"


def copy_fixture(tmp_path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(FIXTURE, target)
    return target


def test_fixture_is_really_version_1():
    marker = json.loads((FIXTURE / "stepscope-store.json").read_text())
    assert marker["schema_version"] == 1
    names = pq.read_schema(next((FIXTURE / "steps").glob("*.parquet"))).names
    assert "reasoning_tokens" not in names
    assert "prompt_version" not in names


def test_opening_migrates_to_the_current_version(tmp_path):
    path = copy_fixture(tmp_path)
    store = Store.open(path)
    marker = json.loads((path / "stepscope-store.json").read_text())
    assert marker["schema_version"] == SCHEMA_VERSION
    assert marker["migrated_from"] == 1
    for segment in store.segment_files():
        assert set(STEP_COLUMN_NAMES) <= set(pq.read_schema(segment).names)


def test_migrated_rows_keep_their_values_and_new_columns_are_null(tmp_path):
    store = Store.open(copy_fixture(tmp_path))
    with store.connect() as con:
        rows, traces, tokens, reasoning, prompt = con.execute(
            "SELECT count(*), count(DISTINCT trace_id), sum(input_tokens), "
            "count(reasoning_tokens), count(prompt_version) FROM steps"
        ).fetchone()
    assert (rows, traces, tokens, reasoning, prompt) == (9, 3, 600, 0, 0)


def test_migrated_store_still_deduplicates(tmp_path):
    store = Store.open(copy_fixture(tmp_path))
    with store.connect() as con:
        existing = con.sql("SELECT * FROM steps").to_arrow_table()
    result = store.append_steps(existing)
    assert (result.stored, result.duplicates) == (0, 9)
