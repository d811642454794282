"""`stepscope import clickhouse-otel`: the Collector's ClickHouse table in, the same steps out.

The exporter's own table is created in chdb with its real DDL and filled, as its Go code
would fill it, from real OTLP payloads (the bundled sample, the instrumentation fixtures;
tests/otel_exporter_rows.py). Importing that table must store the steps that ingesting
the same OTLP stores: every column but where and when the row was loaded, and the same
KPIs. The only differences allowed are the ones the exporter itself made: maps compare
as maps (it stores them sorted by key), and a double attribute keeps the text Go gave it
(`32` for 32.0).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from clickhouse_support import assert_same_value, chdb_url
from ingest_support import FIXTURES, ingest, keep_content
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_exporter_rows import (
    CURRENT,
    JSON_DDL,
    V2022,
    ExporterVersion,
    create_table,
    ddl,
    exporter_rows,
    go_float,
    request_from,
    write_requests,
)
from otlp_builders import SPAN_KIND_CLIENT, request, span, to_protobuf
from otlp_sample_reader import requests as file_requests

from stepscope.analytics import kpis
from stepscope.cli import cli
from stepscope.clickhouse.client import connect
from stepscope.clickhouse.location import parse_location
from stepscope.config import Config
from stepscope.ingest.otel_import import OtelSource, SourceError, import_otel_table
from stepscope.ingest.otel_table import plan_windows
from stepscope.ingest.span_events import (
    CONTENT,
    EXCEPTION,
    FIRST_TOKEN,
    event_role,
    event_role_sql,
)
from stepscope.sample_traces import bundled_traces_dir
from stepscope.store import Store
from stepscope.stores import open_store

LOADED = {"source_file", "source_batch", "ingested_at"}
MAPS = ("attributes", "resource_attributes")
PAYLOADS = ("openai-v2", "openai-v2-latest", "openinference", "traceloop")


def sample_requests() -> list[Any]:
    return [r for path in sorted(bundled_traces_dir().rglob("traces-*")) for r in file_requests(path)]


def exporter_source(root: Path, database: str, requests: list[Any],
                    version: ExporterVersion = CURRENT) -> str:
    """A chdb database holding the exporter's traces table filled with `requests`."""
    url = chdb_url(root, database)
    client = connect(parse_location(url))
    try:
        create_table(client, database, version=version)
        write_requests(client, requests, database, version=version)
    finally:
        client.close()
    return url


def import_into(store: Any, url: str, config: Config | None = None, **options: Any):
    with OtelSource.open(url) as source:
        return import_otel_table(store, source, config or Config(), **options)


def steps(store: Any) -> dict[tuple[str, str], dict[str, Any]]:
    with store.connect() as con:
        table = con.query_arrow("SELECT * FROM steps")
    return {(row["trace_id"], row["span_id"]): row for row in table.to_pylist()}


def reformatted_doubles(requests: list[Any]) -> set[tuple[str, str, str]]:
    """(trace, span, key) of the double attributes Go writes otherwise than OTLP ingest."""
    out = set()
    for doc in requests:
        for rs in request_from(doc).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    for kv in s.attributes:
                        value = kv.value
                        if (value.WhichOneof("value") == "double_value"
                                and go_float(value.double_value) != repr(value.double_value)):
                            out.add((s.trace_id.hex(), s.span_id.hex(), kv.key))
    return out


def assert_same_steps(direct: Any, imported: Any, requests: list[Any]) -> None:
    expected, actual = steps(direct), steps(imported)
    assert expected.keys() == actual.keys()
    doubles = reformatted_doubles(requests)
    seen = set()
    for key, row in expected.items():
        other = actual[key]
        for column, value in row.items():
            if column in LOADED:
                continue
            if column not in MAPS:
                assert other[column] == value, (key, column, value, other[column])
                continue
            mine, theirs = dict(value), dict(other[column])
            assert mine.keys() == theirs.keys(), (key, column)
            for name in mine:
                if mine[name] != theirs[name]:
                    assert (*key, name) in doubles, (key, name, mine[name], theirs[name])
                    assert theirs[name] == go_float(float(mine[name]))
                    seen.add((*key, name))
    assert seen == doubles


# -- the bundled sample, written by the current exporter ------------------------------------


@pytest.fixture(scope="module")
def sample_source(chdb_root: Path) -> tuple[str, list[Any]]:
    reqs = sample_requests()
    return exporter_source(chdb_root, "otel_sample", reqs), reqs


@pytest.fixture(scope="module")
def imported_sample(sample_source, tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("otel-import") / "store", create=True)
    report = import_into(store, sample_source[0], batch_spans=8_000)
    return store, report


def test_sample_import_stores_the_steps_ingest_stores(imported_sample, sample_store, sample_source):
    store, report = imported_sample
    assert report.rejected == 0 and report.duplicates == 0
    assert report.spans_stored == report.spans_read == sample_store.row_count() == 45_994
    assert report.batches >= 6
    assert_same_steps(sample_store, store, sample_source[1])


@pytest.mark.parametrize("by", [("workflow",), ("model",), ("workflow", "day"), ()])
def test_sample_import_gives_the_same_kpis(imported_sample, sample_store, by):
    store, _ = imported_sample
    with sample_store.connect() as direct, store.connect() as imported:
        expected = kpis(direct, None, by)
        assert expected.height > 0
        assert_same_value(expected, kpis(imported, None, by))


def test_importing_again_stores_nothing_and_counts_duplicates(imported_sample, sample_source):
    store, first = imported_sample
    again = import_into(store, sample_source[0])
    assert (again.spans_stored, again.duplicates, again.rejected) == (0, first.spans_read, 0)
    assert store.row_count() == first.spans_stored


def test_batches_are_bounded_contiguous_and_cover_the_table(sample_source):
    with OtelSource.open(sample_source[0]) as source:
        windows = plan_windows(source.client, source.table, None, None, 500)
        bounds = source.client.query_arrow(
            "SELECT min(toUnixTimestamp64Nano(Timestamp)) AS lo, "
            "max(toUnixTimestamp64Nano(Timestamp)) AS hi FROM otel_sample.otel_traces")
    assert sum(w.spans for w in windows) == 45_994
    assert max(w.spans for w in windows) <= 500
    assert len(windows) >= 45_994 // 500
    assert windows[0].start_ns == bounds.column("lo")[0].as_py()
    assert windows[-1].end_ns == bounds.column("hi")[0].as_py() + 1
    assert all(a.end_ns == b.start_ns for a, b in itertools.pairwise(windows))


def test_since_and_until_select_spans_by_start_time(sample_source, sample_store, tmp_path):
    since, until = "2026-11-10T00:00:00Z", "2026-11-12T06:00:00Z"
    with sample_store.connect() as con:
        expected = con.sql(f"SELECT count(*) FROM steps WHERE start_time >= '{since[:-1]}' "
                           f"AND start_time < '{until[:-1]}'").fetchall()[0][0]
    result = CliRunner().invoke(cli, [
        "import", "clickhouse-otel", "--source", sample_source[0], "--since", since,
        "--until", until, "--db", str(tmp_path / "db"), "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 0 < summary["spans_stored"] == expected < 45_994
    assert summary["newest_span"] < until


def test_import_into_a_clickhouse_store(sample_source, sample_store, chdb_root):
    store = open_store(chdb_url(chdb_root, "otel_import_target"), create=True)
    report = import_into(store, sample_source[0])
    assert report.spans_stored == 45_994
    with sample_store.connect() as direct, store.connect() as imported:
        assert_same_value(kpis(direct, None, ("workflow",)), kpis(imported, None, ("workflow",)))
    assert import_into(store, sample_source[0]).duplicates == 45_994


# -- real instrumentation payloads, both generations of the exporter's table ------------------


@pytest.mark.parametrize("version", [CURRENT, V2022], ids=lambda v: v.name)
@pytest.mark.parametrize("stem", PAYLOADS)
def test_instrumentation_payloads_import_as_they_ingest(stem, version, chdb_root, tmp_path):
    path = FIXTURES / f"{stem}.traces.pb"
    reqs = [ExportTraceServiceRequest.FromString(path.read_bytes())]
    url = exporter_source(chdb_root, f"otel_{stem.replace('-', '_')}_{version.name}", reqs, version)
    direct = Store.open(tmp_path / "direct", create=True)
    assert ingest(direct, path, config=keep_content()).rejected == []
    imported = Store.open(tmp_path / "imported", create=True)
    report = import_into(imported, url, keep_content())
    assert (report.spans_stored, report.rejected) == (direct.row_count(), 0)
    assert_same_steps(direct, imported, reqs)


def test_flattened_messages_keep_their_order(chdb_root, tmp_path):
    """The exporter stores keys sorted (`gen_ai.prompt.10` before `gen_ai.prompt.2`); the
    import reads them in natural order, so a long conversation keeps its message order."""
    prompt = {f"gen_ai.prompt.{i}.{field}": f"{field} {i}" for i in range(40)
              for field in ("role", "content")}
    req = request([span("chat gpt-4o", trace=7, span=1, kind=SPAN_KIND_CLIENT,
                        attributes={"gen_ai.operation.name": "chat", **prompt})])
    url = exporter_source(chdb_root, "otel_flattened", [req])
    path = tmp_path / "req.pb"
    path.write_bytes(to_protobuf(req))
    direct = Store.open(tmp_path / "direct", create=True)
    ingest(direct, path, config=keep_content())
    imported = Store.open(tmp_path / "imported", create=True)
    import_into(imported, url, keep_content())
    (expected,), (actual,) = steps(direct).values(), steps(imported).values()
    assert expected["input_content"].splitlines() == [f"content {i}" for i in range(40)]
    assert actual["input_content"] == expected["input_content"]


def test_event_roles_are_the_same_in_python_and_in_clickhouse(chdb_root):
    names = ["exception", "gen_ai.choice", "gen_ai.user.message", "gen_ai.content.prompt",
             "gen_ai.content.completion.chunk", "gen_ai.completion.chunk",
             "First Token Stream Event", "llm.content.completion.chunk", "ai.stream.firstChunk",
             "log", "Exception", "it's", ""]
    client = connect(parse_location(chdb_url(chdb_root, "otel_roles")))
    try:
        listed = ", ".join("'" + n.replace("'", "\\'") + "'" for n in names)
        roles = client.query_arrow(f"SELECT arrayMap(n -> {event_role_sql('n')}, [{listed}]) AS r")
    finally:
        client.close()
    assert roles.column("r")[0].as_py() == [event_role(n) or "" for n in names]
    assert {event_role(n) for n in names} == {EXCEPTION, CONTENT, FIRST_TOKEN, None}


# -- what cannot be imported -------------------------------------------------------------------


def test_spans_with_bad_ids_are_rejected_and_the_others_kept(chdb_root, tmp_path):
    reqs = [ExportTraceServiceRequest.FromString((FIXTURES / "openinference.traces.pb").read_bytes())]
    rows = exporter_rows(reqs)
    trace_ids = rows.column("TraceId").to_pylist()
    span_ids = rows.column("SpanId").to_pylist()
    trace_ids[0] = ""             # what the exporter writes for an all-zero trace id
    span_ids[1] = "not-hex-span"
    rows = rows.set_column(1, "TraceId", pa.array(trace_ids)).set_column(
        2, "SpanId", pa.array(span_ids))
    url = chdb_url(chdb_root, "otel_bad_ids")
    client = connect(parse_location(url))
    create_table(client, "otel_bad_ids")
    client.insert_arrow("otel_bad_ids.otel_traces", rows)
    client.close()
    result = CliRunner().invoke(cli, ["import", "clickhouse-otel", "--source", url,
                                      "--db", str(tmp_path / "db"), "--format", "json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["rejected"], summary["spans_stored"]) == (2, rows.num_rows - 2)
    reasons = " ".join(summary["rejected_examples"])
    assert "trace id ''" in reasons and "span id 'not-hex-span'" in reasons


def run_import(*args: str, db: Path):
    return CliRunner().invoke(cli, ["import", "clickhouse-otel", *args, "--db", str(db)])


@pytest.mark.parametrize(("source", "message"), [
    ("postgres://host/otel", "--source postgres://host/otel: not a ClickHouse URL"),
    ("clickhouse://default@127.0.0.1:1/otel", "--source clickhouse://default@127.0.0.1:1/otel"),
    ("clickhouse://default@127.0.0.1/bad-name", "database name 'bad-name'"),
])
def test_unusable_source_urls_exit_2(source, message, tmp_path):
    result = run_import("--source", source, db=tmp_path / "db")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "db").exists()


def test_missing_chdb_directory_exits_2(tmp_path):
    result = run_import("--source", f"chdb://{tmp_path}/nowhere", db=tmp_path / "db")
    assert result.exit_code == 2
    assert "no chdb data directory" in result.stderr


def test_missing_table_exits_2_naming_it(sample_source, tmp_path):
    result = run_import("--source", sample_source[0], "--table", "otel_spans", db=tmp_path / "db")
    assert result.exit_code == 2
    assert "--table otel_spans: no table otel_sample.otel_spans" in result.stderr
    assert "otel_traces" in result.stderr  # the tables that are there


def test_table_without_the_exporter_columns_exits_2_naming_them(chdb_root, tmp_path):
    url = chdb_url(chdb_root, "otel_not_traces")
    client = connect(parse_location(url))
    client.command("CREATE DATABASE IF NOT EXISTS otel_not_traces")
    client.command("CREATE TABLE IF NOT EXISTS otel_not_traces.otel_traces (Timestamp DateTime64(9), "
                   "TraceId String, SpanId String, Body String) ENGINE = MergeTree ORDER BY Timestamp")
    client.close()
    result = run_import("--source", url, db=tmp_path / "db")
    assert result.exit_code == 2
    assert "not the Collector clickhouseexporter's traces table" in result.stderr
    assert "ParentSpanId" in result.stderr and "Events.Attributes" in result.stderr


def test_the_json_typed_schema_is_refused_by_name(chdb_root, tmp_path):
    url = chdb_url(chdb_root, "otel_json")
    client = connect(parse_location(url))
    client.command("CREATE DATABASE IF NOT EXISTS otel_json")
    client.command(ddl(JSON_DDL, "otel_json", "otel_traces"))
    client.close()
    result = run_import("--source", url, db=tmp_path / "db")
    assert result.exit_code == 2
    assert "column ResourceAttributes is JSON" in result.stderr


def test_source_error_type_is_raised_by_the_library(tmp_path):
    with pytest.raises(SourceError, match="--source"):
        OtelSource.open("clickhouse://default@127.0.0.1:1/otel")


def test_table_summary(sample_source, tmp_path):
    db = tmp_path / "db"
    result = run_import("--source", sample_source[0], "--until", "2026-11-03T00:00:00Z", db=db)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"source", "spans_read", "spans_stored", "duplicates", "rejected",
                          "newest_span", "seconds", "spans_per_second"}
    assert lines["source"].endswith("#otel_sample.otel_traces")
    assert int(lines["spans_read"]) == int(lines["spans_stored"]) > 0
