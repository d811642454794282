"""The store: creation, idempotent appends, reading, retention, export, refusal of bad paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from steps_factory import make_runs

from stepscope.schema import SCHEMA_VERSION
from stepscope.store import Store, StoreError


def test_open_missing_store_says_how_to_create_one(tmp_path):
    with pytest.raises(StoreError, match="stepscope ingest"):
        Store.open(tmp_path / "absent")


def test_create_writes_marker_with_schema_version(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    marker = json.loads((tmp_path / "db" / "stepscope-store.json").read_text())
    assert marker["format"] == "stepscope-store"
    assert marker["schema_version"] == SCHEMA_VERSION
    assert store.row_count() == 0


def test_a_plain_file_is_refused(tmp_path):
    target = tmp_path / "stepscope.duckdb"
    target.write_bytes(b"not a store")
    with pytest.raises(StoreError, match="is a file"):
        Store.open(target, create=True)


def test_empty_store_reads_as_empty_steps_table(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM steps").fetchone() == (0,)


def test_append_then_same_spans_again_are_duplicates(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    batch = make_runs(4, steps_per_run=3)
    first = store.append_steps(batch)
    again = store.append_steps(batch)
    assert (first.stored, first.duplicates) == (12, 0)
    assert (again.stored, again.duplicates) == (0, 12)
    assert store.row_count() == 12


def test_duplicates_inside_one_batch_are_stored_once(tmp_path):
    import pyarrow as pa

    store = Store.open(tmp_path / "db", create=True)
    batch = make_runs(2, steps_per_run=2)
    result = store.append_steps(pa.concat_tables([batch, batch]))
    assert (result.stored, result.duplicates) == (4, 4)


def test_partly_new_batch_stores_only_new_spans(tmp_path):
    import pyarrow as pa

    store = Store.open(tmp_path / "db", create=True)
    old = make_runs(3)
    store.append_steps(old)
    new = make_runs(2)
    result = store.append_steps(pa.concat_tables([old.slice(0, 4), new]))
    assert (result.stored, result.duplicates) == (6, 4)
    with store.connect() as con:
        assert con.execute("SELECT count(DISTINCT trace_id) FROM steps").fetchone() == (5,)


def test_segments_are_parquet_with_every_column(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    store.append_steps(make_runs(1))
    (segment,) = store.segment_files()
    names = pq.read_schema(segment).names
    assert names[:3] == ["trace_id", "span_id", "parent_span_id"]
    assert "span_key" in names


def test_reader_sees_new_segments_after_refresh(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM steps").fetchone() == (0,)
        store.append_steps(make_runs(2))
        assert con.refresh() is True
        assert con.execute("SELECT count(*) FROM steps").fetchone() == (6,)
        assert con.refresh() is False


def test_compaction_merges_small_segments_and_keeps_rows(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    for _ in range(5):
        store.append_steps(make_runs(3), compact=False)
    assert len(store.segment_files()) == 5
    assert store.compact(force=True) == 5
    assert len(store.segment_files()) == 1
    assert store.row_count() == 45
    again = store.append_steps(make_runs(3))
    assert again.stored == 9


def test_prune_drops_whole_old_runs(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    store.append_steps(make_runs(2, start=datetime(2026, 10, 1, tzinfo=UTC)))
    store.append_steps(make_runs(3, start=datetime(2026, 11, 20, tzinfo=UTC)))
    cutoff = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1e9)
    assert store.delete_steps_before(cutoff) == 6
    assert store.row_count() == 9
    assert store.delete_steps_before(cutoff) == 0


def test_store_newer_than_this_stepscope_is_refused(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    marker = json.loads((store.path / "stepscope-store.json").read_text())
    marker["schema_version"] = SCHEMA_VERSION + 1
    (store.path / "stepscope-store.json").write_text(json.dumps(marker))
    with pytest.raises(StoreError, match="newer than this stepscope"):
        Store.open(store.path)


def content_events(trace_id: str, span_id: str, n: int):
    import pyarrow as pa

    return pa.table({
        "trace_id": [trace_id] * n, "span_id": [span_id] * n,
        "time_ns": [1_763_000_000_000_000_000 + i for i in range(n)],
        "event_name": ["gen_ai.user.message"] * n, "role": ["user"] * n,
        "content": [f"message {i}" for i in range(n)],
        "attributes": pa.array([[]] * n, pa.map_(pa.string(), pa.string())),
        "source_file": ["test"] * n, "ingested_at": [datetime(2026, 11, 20)] * n,
    })


def test_content_events_are_a_second_deduplicated_dataset(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    runs = make_runs(1, start=datetime(2026, 10, 1, tzinfo=UTC))
    store.append_steps(runs)
    trace_id, span_id = runs.column("trace_id")[1].as_py(), runs.column("span_id")[1].as_py()
    first = store.append("content_events", content_events(trace_id, span_id, 3))
    again = store.append("content_events", content_events(trace_id, span_id, 3))
    assert (first.stored, again.stored, again.duplicates) == (3, 0, 3)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM content_events").fetchone() == (3,)
    cutoff = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1e9)
    assert store.delete_steps_before(cutoff) == 3
    assert store.row_count("content_events") == 0


def test_empty_store_has_empty_content_events(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM content_events").fetchone() == (0,)


def test_store_being_created_reads_as_not_yet_there(tmp_path):
    path = tmp_path / "db"
    (path / "steps").mkdir(parents=True)
    (path / "write.lock").touch()
    with pytest.raises(StoreError, match="no store here yet"):
        Store.open(path)


def test_foreign_directory_is_not_a_store(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not a stepscope store"):
        Store.open(tmp_path / "db")


def test_a_compacted_segment_is_not_compacted_again(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    for _ in range(3):
        store.append_steps(make_runs(2), compact=False)
    assert store.compact(force=True) == 3
    store.append_steps(make_runs(2), compact=False)
    assert store.compact(force=True) == 0
    assert len(store.segment_files()) == 2
