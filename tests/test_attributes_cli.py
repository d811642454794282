"""`stepscope attributes [--unmapped]` lists the stored attribute keys with counts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from normalise_helpers import decode, normalise_raw, steps_table
from otlp_builders import SPAN_KIND_CLIENT, request, span

from stepscope.cli import cli
from stepscope.store import Store


@pytest.fixture()
def db(tmp_path):
    spans = [
        span("run", trace=1, span=1, attributes={
            "gen_ai.workflow.name": "triage", "task.outcome": "completed",
            "app.ticket_priority": "P2", "acme.region": "eu-west-1"}),
        span("chat a", trace=1, span=2, parent=1, kind=SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.request.temperature": 0.2, "server.address": "api.openai.com",
            "gen_ai.usage.input_tokens": 10, "app.ticket_priority": "P1",
            "vendor.secret_sauce": "contact jane@example.com",
            "gen_ai.prompt.0.content": "hello"}),
        span("chat b", trace=1, span=3, parent=1, kind=SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12,
            "app.ticket_priority": "P3", "my.flow": "refunds"}),
    ]
    path = tmp_path / "store"
    Store.open(path, create=True).append_steps(steps_table(request(spans)))
    return str(path)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_all_keys_with_counts_and_examples(db):
    rows = json.loads(run("attributes", "--db", db, "--format", "json"))
    by_key = {r["key"]: r for r in rows}
    assert len(rows) == 12
    assert by_key["app.ticket_priority"]["spans"] == 3
    assert by_key["gen_ai.usage.input_tokens"]["spans"] == 2
    assert by_key["gen_ai.usage.input_tokens"]["example"] in {"10", "12"}
    assert by_key["server.address"] == {"key": "server.address", "spans": 1,
                                        "example": "api.openai.com",
                                        "scope": "opentelemetry.instrumentation.openai_v2"}
    assert rows[0]["key"] == "app.ticket_priority"          # most frequent first


def test_unmapped_lists_only_keys_no_mapping_reads(db):
    rows = json.loads(run("attributes", "--unmapped", "--db", db, "--format", "json"))
    assert [(r["key"], r["spans"]) for r in rows] == [
        ("app.ticket_priority", 3), ("acme.region", 1), ("my.flow", 1),
        ("vendor.secret_sauce", 1)]
    # Example values are stored values: already redacted.
    assert {r["key"]: r["example"] for r in rows}["vendor.secret_sauce"] == "contact [REDACTED:email]"


def test_keys_named_in_the_configuration_count_as_mapped(db, tmp_path):
    conf = tmp_path / "stepscope.toml"
    conf.write_text('[workflow]\nattributes = ["my.flow"]\n[tenant]\nattributes = ["acme.region"]\n')
    rows = json.loads(run("attributes", "--unmapped", "--db", db, "--config", str(conf),
                          "--format", "json"))
    # The default workflow key is no longer read, so it shows up instead.
    assert [r["key"] for r in rows] == ["app.ticket_priority", "gen_ai.workflow.name",
                                        "vendor.secret_sauce"]


def test_table_and_csv_formats(db):
    table = run("attributes", "--unmapped", "--db", db)
    assert table.splitlines()[0].split() == ["key", "spans", "example", "scope"]
    assert "app.ticket_priority" in table
    records = list(csv.DictReader(io.StringIO(run("attributes", "--unmapped", "--db", db,
                                                  "--format", "csv"))))
    assert records[0]["key"] == "app.ticket_priority" and records[0]["spans"] == "3"


def test_missing_store_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["attributes", "--db", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no store here yet" in result.output


def test_real_instrumentation_payloads_leave_only_audio_token_counts_unmapped(tmp_path):
    store = Store.open(tmp_path / "real", create=True)
    for path in sorted((Path(__file__).parent / "fixtures" / "instrumentation").glob("*.traces.pb")):
        store.append_steps(normalise_raw(decode(path.read_bytes(), source=path.name)))
    rows = json.loads(run("attributes", "--unmapped", "--db", str(tmp_path / "real"),
                          "--format", "json"))
    assert [(r["key"], r["spans"]) for r in rows] == [
        ("llm.token_count.completion_details.audio", 3),
        ("llm.token_count.prompt_details.audio", 3)]
