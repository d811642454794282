"""The ClickHouse store: URLs, layout, idempotent and overlapping writes, retention, refresh.

All on chdb (the ClickHouse engine in-process), through the same pipeline and analytics
as the embedded store; the sample traces are the data.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pyarrow as pa
import pytest
from clickhouse_support import assert_same_value, chdb_url
from ingest_support import write_files
from otlp_builders import agent_trace, hex_trace, request_of, resource_spans, span, to_protobuf
from steps_factory import make_runs

import stepscope.clickhouse.store as clickhouse_store
import stepscope.ingest.formats as formats
import stepscope.ingest.pipeline as pipeline
from stepscope.analytics import kpis
from stepscope.analytics.filters import Filters
from stepscope.clickhouse.location import LocationError, parse_location
from stepscope.clickhouse.store import ClickHouseStore
from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths, iter_input_files
from stepscope.sample_traces import bundled_traces_dir
from stepscope.store import StoreError
from stepscope.stores import open_store
from stepscope.timeparse import parse_instant

SAMPLE_SPANS = 45_994


# -- URLs ----------------------------------------------------------------------------------


def test_server_urls(monkeypatch) -> None:
    monkeypatch.delenv("STEPSCOPE_CLICKHOUSE_PASSWORD", raising=False)
    plain = parse_location("clickhouse://ingest@ch-1.internal/agents")
    assert (plain.kind, plain.host, plain.port, plain.user, plain.database, plain.secure) == (
        "http", "ch-1.internal", 8123, "ingest", "agents", False)
    secure = parse_location("clickhouses://u:p%40ss@ch:9443/db?state_dir=/var/lib/ss")
    assert (secure.port, secure.password, secure.secure, secure.state_dir) == (9443, "p@ss", True,
                                                                               "/var/lib/ss")
    assert "p@ss" not in secure.display and secure.display == "clickhouses://u@ch:9443/db"
    monkeypatch.setenv("STEPSCOPE_CLICKHOUSE_PASSWORD", "from-env")
    assert parse_location("clickhouse://u@h").password == "from-env"
    assert parse_location("clickhouse://h").database == "stepscope"


def test_chdb_urls(tmp_path) -> None:
    location = parse_location(f"chdb://{tmp_path}/data?database=demo&retention_days=30")
    assert (location.kind, location.database, location.retention_days) == ("chdb", "demo", 30)
    assert (location.partition, location.refresh_seconds) == ("day", 0.0)
    tuned = parse_location(f"chdb://{tmp_path}/data?partition=hour&refresh_seconds=60")
    assert (tuned.partition, tuned.refresh_seconds) == ("hour", 60.0)
    assert location.chdb_path == str(tmp_path / "data")
    assert location.state_dir == str(tmp_path / "data" / "state")


@pytest.mark.parametrize("url, complaint", [
    ("clickhouse:///db", "no host"),
    ("clickhouse://h:port/db", "port"),
    ("clickhouse://h/bad-name", "database name"),
    ("clickhouse://h/db?colour=red", "unknown option 'colour'"),
    ("clickhouse://h/db?retention_days=0", "retention_days"),
    ("chdb://", "needs a directory"),
    ("clickhouse://h/db?partition=week", "partition must be day or hour"),
    ("clickhouse://h/db?refresh_seconds=soon", "refresh_seconds"),
])
def test_bad_urls_say_what_is_wrong(url, complaint) -> None:
    with pytest.raises(LocationError, match=complaint):
        parse_location(url)


def test_a_password_in_a_bad_url_is_not_repeated() -> None:
    with pytest.raises(LocationError) as caught:
        parse_location("clickhouse://u:secret@h/db?x=1")
    assert "secret" not in str(caught.value)


# -- layout and opening ----------------------------------------------------------------------


def test_opening_a_database_without_a_store_says_how_to_make_one(chdb_root) -> None:
    with pytest.raises(StoreError, match="stepscope ingest"):
        open_store(chdb_url(chdb_root, "never_created"))


def test_a_new_store_has_the_layout_and_schema_version(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "layout"), create=True)
    assert isinstance(store, ClickHouseStore)
    engine = store.client.query_arrow(
        "SELECT engine, partition_key, sorting_key FROM system.tables "
        "WHERE database = 'layout' AND name = 'steps_data'").to_pylist()
    assert engine == [{"engine": "ReplacingMergeTree", "partition_key": "toDate(start_time)",
                       "sorting_key": "trace_id, span_id"}]
    assert store.schema_version >= 2 and store.row_count() == 0
    assert open_store(chdb_url(chdb_root, "layout")).row_count() == 0      # opens again


# -- writing ----------------------------------------------------------------------------------


def test_the_same_spans_again_are_duplicates(sample_clickhouse_store) -> None:
    # The session's sample store got the files once; a second time stores nothing.
    report = ingest_paths(sample_clickhouse_store, [bundled_traces_dir()], Config())
    assert (report.spans_stored, report.duplicates) == (0, SAMPLE_SPANS)
    assert sample_clickhouse_store.row_count() == SAMPLE_SPANS


def test_overlapping_writers_interleaved_store_each_span_once(chdb_root, sample_store) -> None:
    """Two writers (two sessions of one process: chdb allows one process per directory)
    send overlapping halves of the sample at the same time, then everything again."""
    files = list(iter_input_files([bundled_traces_dir()]))
    halves = (files[: len(files) * 2 // 3], files[len(files) // 3:])
    url = chdb_url(chdb_root, "overlap")
    writers = [open_store(url, create=True), open_store(url)]
    reports = []

    def write(store, paths) -> None:
        reports.append(ingest_paths(store, paths, Config(), workers=2))

    for _ in range(2):
        threads = [threading.Thread(target=write, args=(w, h)) for w, h in zip(writers, halves, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(reports) == 4 and all(r.rejected == [] for r in reports)
    assert writers[0].row_count() == SAMPLE_SPANS
    with sample_store.connect() as duck, writers[1].connect() as click:
        assert_same_value(kpis(duck, None, ("workflow", "day")), kpis(click, None, ("workflow", "day")))


def test_one_batch_sent_by_two_writers_at_once_is_stored_once(chdb_root) -> None:
    url = chdb_url(chdb_root, "same_batch")
    writers = [open_store(url, create=True), open_store(url)]
    batch = make_runs(200, steps_per_run=4)
    start = threading.Barrier(2)
    results = []

    def send(store) -> None:
        start.wait()
        results.append(store.append_steps(batch))

    threads = [threading.Thread(target=send, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writers[0].row_count() == 800
    assert sorted(r.stored + r.duplicates for r in results) == [800, 800]


def test_a_batch_with_repeated_spans_stores_each_once(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "repeats"), create=True)
    batch = make_runs(10)
    result = store.append_steps(pa.concat_tables([batch, batch.slice(0, 5)]))
    assert (result.stored, result.duplicates) == (30, 5)
    assert store.row_count() == 30


# -- reading while writing, retention ---------------------------------------------------------


def test_a_reader_sees_new_batches_and_recomputes_only_their_days(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "live"), create=True)
    store.append_steps(make_runs(20, start=parse_instant("2026-11-10T10:00Z")))
    with store.connect() as con:
        assert kpis(con, None, ())["runs"].to_list() == [20]
        days_before = con.segments()
        store.append_steps(make_runs(5, start=parse_instant("2026-11-12T10:00Z")))
        assert kpis(con, None, ())["runs"].to_list() == [25]
        days_after = con.segments()
    assert days_before[0] in days_after and len(days_after) == 2


def test_merges_do_not_change_what_readers_see(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "merges"), create=True)
    for hour in range(3):
        store.append_steps(make_runs(5, start=parse_instant(f"2026-11-10T0{hour}:00Z")))
    generation = store.generation()
    store.compact(force=True)                      # OPTIMIZE ... FINAL merges the parts
    assert store.generation() == generation and store.row_count() == 45


def test_prune_drops_whole_old_runs(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "prune"), create=True)
    store.append_steps(make_runs(4, start=parse_instant("2026-10-01T12:00Z"), steps_per_run=3))
    store.append_steps(make_runs(6, start=parse_instant("2026-11-10T12:00Z"), steps_per_run=3))
    cutoff = parse_instant("2026-11-01T00:00Z")
    assert store.delete_steps_before(int(cutoff.timestamp() * 1e9)) == 12
    assert store.row_count() == 18
    with store.connect() as con:
        runs = kpis(con, Filters(since=cutoff - timedelta(days=60)), ())
    assert runs["runs"].to_list() == [6]


def test_retention_days_expires_whole_days_of_steps_and_content(chdb_root) -> None:
    store = open_store(chdb_url(chdb_root, "retention") + "&retention_days=30", create=True)
    ddl = {row["name"]: row["engine_full"] for row in store.client.query_arrow(
        "SELECT name, engine_full FROM system.tables WHERE database = 'retention' "
        "AND name LIKE '%_data'").to_pylist()}
    assert "TTL toDate(start_time) + toIntervalDay(30)" in ddl["steps_data"]
    assert "toIntervalDay(30)" in ddl["content_events_data"]
    assert all("ttl_only_drop_parts = 1" in text for text in ddl.values())


def test_nothing_of_a_large_rejected_file_is_inserted(chdb_root, tmp_path, monkeypatch) -> None:
    """As on the embedded store (test_ingest_bad_input): the bad span comes last, after
    units of the file were written into pending segments shared with the good file; the
    pending files are inserted a few rows at a time, so the excluded ranges cross batches."""
    monkeypatch.setattr(formats, "UNIT_BYTES", 8_000)
    monkeypatch.setattr(pipeline, "TASK_BYTES", 16_000)
    monkeypatch.setattr(clickhouse_store, "PUBLISH_BATCH_ROWS", 7)
    bad_tail = resource_spans([span("last", trace=b"\x07" * 15, span=1)])
    big_bad = to_protobuf(request_of(*(resource_spans(agent_trace(n)) for n in range(10, 60)), bad_tail))
    big_good = to_protobuf(request_of(*(resource_spans(agent_trace(n)) for n in range(60, 100))))
    bad, good = write_files(tmp_path, {"big-bad.pb": big_bad, "big-good.pb": big_good})
    store = open_store(chdb_url(chdb_root, "rejected"), create=True)
    report = ingest_paths(store, [bad, good], Config(), workers=1)
    assert [r["file"] for r in report.rejected] == [str(bad)]
    assert report.spans_stored == store.row_count() == 120
    traces = store.client.query_arrow("SELECT DISTINCT trace_id FROM rejected.steps").column(0)
    assert len(traces) == 40 and min(traces.to_pylist()) == hex_trace(60)
    assert list(store.path.rglob(".pending-*")) == []


def test_a_reader_takes_in_new_data_at_most_every_refresh_seconds(chdb_root) -> None:
    import time

    url = chdb_url(chdb_root, "throttled")
    store = open_store(url, create=True)
    store.append_steps(make_runs(3, start=parse_instant("2026-11-10T10:00Z")))
    with open_store(url + "&refresh_seconds=1").connect() as con:
        assert kpis(con, None, ())["runs"].to_list() == [3]
        store.append_steps(make_runs(2, start=parse_instant("2026-11-10T11:00Z")))
        assert kpis(con, None, ())["runs"].to_list() == [3]       # within the second
        time.sleep(1.1)
        assert kpis(con, None, ())["runs"].to_list() == [5]
