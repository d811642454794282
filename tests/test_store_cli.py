"""`stepscope info`, `prune`, `compact` and `export` over a small store."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
from click.testing import CliRunner
from steps_factory import make_runs

from stepscope.cli import cli
from stepscope.store import Store


def make_store(tmp_path) -> str:
    store = Store.open(tmp_path / "db", create=True)
    store.append_steps(make_runs(2, start=datetime(2026, 10, 1, tzinfo=UTC), workflow="refunds"))
    store.append_steps(make_runs(3, start=datetime(2026, 11, 20, tzinfo=UTC)))
    return str(store.path)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_info_reports_counts_and_time_span(tmp_path):
    db = make_store(tmp_path)
    result = run("info", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["steps"] == 15
    assert info["traces"] == 5
    assert info["first_step"] == "2026-10-01T00:00:00Z"


def test_info_on_missing_store_exits_2_with_advice(tmp_path):
    result = run("info", "--db", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "stepscope ingest" in result.output


def test_db_defaults_to_environment_variable(tmp_path, monkeypatch):
    db = make_store(tmp_path)
    monkeypatch.setenv("STEPSCOPE_DB", db)
    result = run("info", "--format", "json")
    assert json.loads(result.output)["steps"] == 15


def test_prune_older_than(tmp_path):
    db = make_store(tmp_path)
    result = run("prune", "--db", db, "--older-than", "30d", "--now", "2026-11-24T00:00Z",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"cutoff": "2026-10-25T00:00:00Z", "steps_deleted": 6}


def test_prune_bad_duration_names_the_flag(tmp_path):
    db = make_store(tmp_path)
    result = run("prune", "--db", db, "--older-than", "a month")
    assert result.exit_code == 2
    assert "--older-than" in result.output


def test_export_csv_to_stdout_filters_by_time_and_workflow(tmp_path):
    db = make_store(tmp_path)
    result = run("export", "--db", db, "--since", "2026-09-01", "--workflow", "refunds")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 6
    assert {r["trace_id"] for r in rows} and all(len(r["trace_id"]) == 32 for r in rows)
    assert json.loads(rows[0]["resource_attributes"]) == {"service.name": "support-agent"}


def test_export_parquet_needs_out(tmp_path):
    db = make_store(tmp_path)
    assert run("export", "--db", db, "--format", "parquet").exit_code == 2
    out = tmp_path / "steps.parquet"
    result = run("export", "--db", db, "--format", "parquet", "--out", str(out),
                 "--until", "2026-11-01")
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 6


def test_compact_merges(tmp_path):
    db = make_store(tmp_path)
    result = run("compact", "--db", db, "--force")
    assert result.output.strip() == "merged 2 segments"
    assert len(Store.open(db).segment_files()) == 1
