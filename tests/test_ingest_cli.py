"""`stepscope ingest`: the summary it prints, and its exit status."""

from __future__ import annotations

import json

from click.testing import CliRunner
from ingest_support import write_files
from otlp_builders import agent_trace, request, to_json_lines, to_otlp_json, to_protobuf

from stepscope.cli import cli
from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths
from stepscope.store import Store


def run(*args: str):
    return CliRunner().invoke(cli, ["ingest", *args])


def test_json_summary_has_exactly_the_five_keys(tmp_path):
    paths = write_files(tmp_path, {"a.pb": to_protobuf(request(agent_trace(1) + agent_trace(2))),
                                   "b.json": to_otlp_json(request(agent_trace(3)))})
    result = run(*map(str, paths), "--db", str(tmp_path / "db"), "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["files", "spans_stored", "duplicates", "rejected", "seconds"]
    assert {k: summary[k] for k in ("files", "spans_stored", "duplicates", "rejected")} == {
        "files": 2, "spans_stored": 9, "duplicates": 0, "rejected": []}
    assert isinstance(summary["seconds"], float)


def test_second_run_counts_duplicates(tmp_path):
    (path,) = write_files(tmp_path, {"a.pb": to_protobuf(request(agent_trace(1)))})
    db = str(tmp_path / "db")
    assert run(str(path), "--db", db).exit_code == 0
    result = run(str(path), "--db", db, "--format", "json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert (summary["spans_stored"], summary["duplicates"]) == (0, 3)


def test_rejections_give_exit_status_1_and_name_file_and_reason(tmp_path):
    good, bad, jsonl = write_files(tmp_path, {
        "good.pb": to_protobuf(request(agent_trace(1))),
        "bad.json": '{"resourceSpans": [',
        "lines.jsonl": to_json_lines([request(agent_trace(2))]) + "not json\n",
    })
    result = run(str(good), str(bad), str(jsonl), "--db", str(tmp_path / "db"), "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["spans_stored"] == 6
    assert summary["rejected"] == [
        {"file": str(bad), "reason": "invalid JSON at line 1 column 20: Expecting value"},
        {"file": str(jsonl), "reason": "line 2: invalid JSON at column 1: Expecting value"},
    ]


def test_table_output_adds_spans_per_second_and_prints_rejections_on_stderr(tmp_path):
    good, empty = write_files(tmp_path, {"good.pb": to_protobuf(request(agent_trace(1))),
                                         "empty.pb": b""})
    result = run(str(good), str(empty), "--db", str(tmp_path / "db"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "files", "spans_stored", "duplicates", "rejected", "seconds", "spans_per_second"]
    assert lines[1].split() == ["spans_stored", "3"]
    assert lines[3].split() == ["rejected", "1"]
    assert result.stderr == f"rejected {empty}: empty file (0 bytes)\n"


def test_usage_and_configuration_errors_exit_2(tmp_path):
    (path,) = write_files(tmp_path, {"a.pb": to_protobuf(request(agent_trace(1)))})
    missing = run(str(tmp_path / "nope.pb"), "--db", str(tmp_path / "db"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    (config,) = write_files(tmp_path, {"bad.toml": "[ingest]\nmax_file_byte = 5\n"})
    bad_config = run(str(path), "--db", str(tmp_path / "db"), "--config", str(config))
    assert bad_config.exit_code == 2
    assert "unknown key 'ingest.max_file_byte'" in bad_config.stderr
    db_is_a_file = run(str(path), "--db", str(path))
    assert db_is_a_file.exit_code == 2
    assert "is a file, not a stepscope store directory" in db_is_a_file.stderr


def test_configured_limits_apply(tmp_path):
    (path,) = write_files(tmp_path, {"a.pb": to_protobuf(request(agent_trace(1)))})
    (config,) = write_files(tmp_path, {"small.toml": "[ingest]\nmax_file_bytes = 100\n"})
    result = run(str(path), "--db", str(tmp_path / "db"), "--config", str(config), "--format", "json")
    assert result.exit_code == 1
    (rejected,) = json.loads(result.stdout)["rejected"]
    assert rejected["reason"].startswith("file is ")
    assert rejected["reason"].endswith("above the 100 bytes limit ([ingest] max_file_bytes)")


def test_progress_reaches_the_total_and_never_goes_back(tmp_path):
    paths = write_files(tmp_path, {f"{n}.pb": to_protobuf(request(agent_trace(n))) for n in range(1, 6)}
                        | {"bad.pb": b"\x0a\xff"})
    seen: list[tuple[int, int]] = []
    ingest_paths(Store.open(tmp_path / "db", create=True), paths, Config(),
                 progress=lambda done, total: seen.append((done, total)))
    total = sum(p.stat().st_size for p in paths)
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert {t for _, t in seen} == {total}
