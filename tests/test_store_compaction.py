"""Compaction runs outside the write lock: writers go on, and a stale merge is dropped."""

from __future__ import annotations

import pyarrow.parquet as pq
from steps_factory import make_runs

from stepscope.store import COMPACT_WHEN_SMALL_SEGMENTS, Store


def small_store(tmp_path, segments: int) -> Store:
    store = Store.open(tmp_path / "db", create=True)
    for _ in range(segments):
        store.append_steps(make_runs(2), compact=False)
    return store


def test_appends_compact_once_enough_small_segments_pile_up(tmp_path):
    store = small_store(tmp_path, COMPACT_WHEN_SMALL_SEGMENTS - 1)
    assert len(store.segment_files()) == COMPACT_WHEN_SMALL_SEGMENTS - 1
    store.append_steps(make_runs(2))
    (merged,) = store.manifest()["segments"]
    assert merged["compacted"] is True and merged["rows"] == 6 * COMPACT_WHEN_SMALL_SEGMENTS
    times = pq.read_table(store.path / merged["file"], columns=["start_time_ns"]).column(0).to_pylist()
    assert times == sorted(times)
    assert not list(store.path.glob("steps/.pending-*"))


def test_writers_append_while_a_compaction_writes(tmp_path, monkeypatch):
    store = small_store(tmp_path, 4)
    written = Store._copy_to_segment

    def copy_then_append(self, *args, **kwargs):
        segment = written(self, *args, **kwargs)
        # Another writer, mid-compaction: it must not wait for the compaction to finish.
        Store(self.path).append_steps(make_runs(1), compact=False)
        return segment

    monkeypatch.setattr(Store, "_copy_to_segment", copy_then_append)
    assert store.compact(force=True) == 4
    assert store.row_count() == 4 * 6 + 3
    assert len(store.segment_files()) == 2  # the merged one and the one appended meanwhile


def test_a_merge_whose_segments_changed_meanwhile_is_dropped(tmp_path, monkeypatch):
    store = small_store(tmp_path, 3)
    first = store.manifest()["segments"][0]["file"]
    written = Store._copy_to_segment

    def copy_then_retire(self, *args, **kwargs):
        segment = written(self, *args, **kwargs)
        with self.write_lock():  # e.g. retention removing a segment meanwhile
            self._publish(self.manifest(), remove=[first])
        return segment

    monkeypatch.setattr(Store, "_copy_to_segment", copy_then_retire)
    assert store.compact(force=True) == 0
    assert store.row_count() == 2 * 6
    assert len(store.segment_files()) == 2
    assert not list(store.path.glob("steps/.pending-*"))


def test_only_one_process_compacts_at_a_time(tmp_path):
    store = small_store(tmp_path, 3)
    with store._compaction_lock(wait=False) as held:
        assert held
        assert Store(store.path)._compact_dataset("steps", force=True) == 0
    assert store.compact(force=True) == 3
