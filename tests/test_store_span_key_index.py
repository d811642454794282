"""Each segment keeps its sorted span keys; deduplication looks them up, never scans."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from steps_factory import make_runs

import stepscope.store as store_module
from stepscope import span_key_index
from stepscope.store import Store


def segment_paths(store: Store) -> list:
    return [store.path / f for f in store.segment_files()]


def stored_keys(segment) -> np.ndarray:
    return np.sort(pq.read_table(segment, columns=["span_key"]).column(0).to_numpy())


def test_every_published_segment_has_its_keys_sorted_beside_it(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    store.append_steps(make_runs(4))
    store.append_steps(make_runs(3))
    for segment in segment_paths(store):
        index = np.load(span_key_index.index_path(segment))
        assert index.dtype == np.uint64
        assert np.array_equal(index, stored_keys(segment))


def test_a_duplicate_is_found_through_the_index_and_new_spans_read_no_segment(tmp_path,
                                                                             monkeypatch):
    store = Store.open(tmp_path / "db", create=True)
    runs = make_runs(5)
    store.append_steps(runs)
    confirmed = []
    real_sql = store_module.duckdb.DuckDBPyConnection.sql

    def spy(con, query, *args, **kwargs):
        if "read_parquet" in query and "span_key IN" in query:
            confirmed.append(query)
        return real_sql(con, query, *args, **kwargs)

    monkeypatch.setattr(store_module.duckdb.DuckDBPyConnection, "sql", spy)
    fresh = store.append_steps(make_runs(2))
    assert (fresh.stored, fresh.duplicates) == (6, 0)
    assert confirmed == []                          # nothing matched: no segment was read
    mixed = pa.concat_tables([runs.slice(0, 4), make_runs(1)])
    again = store.append_steps(mixed)
    assert (again.stored, again.duplicates) == (3, 4)
    assert len(confirmed) == 1
    assert store.row_count() == 15 + 6 + 3


def test_missing_or_damaged_indexes_are_rebuilt_from_their_segments(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    first, second = make_runs(3), make_runs(3)
    store.append_steps(first)
    store.append_steps(second)
    one, two = segment_paths(store)
    span_key_index.index_path(one).unlink()                 # e.g. a store written before indexes
    span_key_index.index_path(two).write_bytes(b"not an index")
    result = store.append_steps(pa.concat_tables([first, second]))
    assert (result.stored, result.duplicates) == (0, 18)
    for segment in (one, two):
        assert np.array_equal(np.load(span_key_index.index_path(segment)), stored_keys(segment))


def test_spans_sharing_a_span_key_are_still_told_apart_by_their_ids(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    runs = make_runs(1, steps_per_run=1)
    store.append_steps(runs)
    trace, span = runs.column("trace_id")[0].as_py(), runs.column("span_id")[0].as_py()
    # The key xors the trace id's low 64 bits with the span id: flip one bit in both.
    flip = lambda text: text[:-1] + format(int(text[-1], 16) ^ 1, "x")  # noqa: E731
    twin = runs.set_column(runs.schema.get_field_index("trace_id"), "trace_id",
                           pa.array([flip(trace)]))
    twin = twin.set_column(twin.schema.get_field_index("span_id"), "span_id", pa.array([flip(span)]))
    result = store.append_steps(twin)
    assert (result.stored, result.duplicates) == (1, 0)
    keys = pq.read_table(store.path / store.segment_files()[0], columns=["span_key"]).column(0)
    assert pc.equal(keys[0], stored_keys(store.path / store.segment_files()[1])[0]).as_py()


def test_compaction_indexes_the_merged_segment_and_retired_indexes_go_with_them(tmp_path,
                                                                                monkeypatch):
    store = Store.open(tmp_path / "db", create=True)
    for _ in range(3):
        store.append_steps(make_runs(2), compact=False)
    small = segment_paths(store)
    assert store.compact(force=True) == 3
    (merged,) = segment_paths(store)
    assert np.array_equal(np.load(span_key_index.index_path(merged)), stored_keys(merged))
    monkeypatch.setattr(store_module, "RETIRED_GRACE_SECONDS", -1)
    with store.write_lock():
        store._sweep_retired(store.manifest())
    assert not any(span_key_index.index_path(s).exists() or s.exists() for s in small)
    assert store.append_steps(make_runs(2)).duplicates == 0
