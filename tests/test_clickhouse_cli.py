"""Commands with `--db` naming a ClickHouse store: the same output as on the embedded store.

In-process commands use the session's chdb directory (one per process); `stepscope
serve` runs as a child process on a directory of its own, with the real OpenTelemetry
SDK exporter sending to it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from clickhouse_support import assert_same_value, chdb_url
from serve_harness import ServeProcess
from test_serve_otel_sdk import RUNS, WORKFLOW, _send_traces_and_logs

from stepscope.cli import cli
from stepscope.sample_traces import bundled_traces_dir

NOW = "2026-11-15T23:33:08Z"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def click_db(chdb_root) -> str:
    url = chdb_url(chdb_root, "cli")
    code, out, err = run("ingest", str(bundled_traces_dir()), "--db", url, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["spans_stored"] == 45_994
    return url


@pytest.mark.parametrize("command", [
    ["kpis"], ["kpis", "--by", "workflow,week"], ["kpis", "--steps", "--by", "tool"],
    ["spend", "--by", "model"], ["prices"], ["clusters", "--since", "now-7d"], ["drift"],
    ["compare", "--baseline", "service_version=1.9.4", "--current", "service_version=2.0.0"],
    ["attributes", "--unmapped"],
])
def test_query_commands_answer_as_on_the_embedded_store(click_db, sample_store, command) -> None:
    outputs = []
    for db in (str(sample_store.path), click_db):
        code, out, err = run(*command, "--db", db, "--now", NOW, "--format", "json") \
            if command[0] != "attributes" else run(*command, "--db", db, "--format", "json")
        assert code == 0, err
        outputs.append(json.loads(out))
    assert_same_value(*outputs)


def test_alert_check_fires_the_same_rules(click_db, sample_store) -> None:
    results = []
    for db in (str(sample_store.path), click_db):
        code, out, err = run("alerts", "check", "--db", db, "--at", "2026-11-14T12:00Z",
                             "--format", "json")
        assert code in (0, 1), err
        results.append((code, json.loads(out)))
    assert_same_value(*results)


def test_info_and_export(click_db) -> None:
    code, out, _ = run("info", "--db", click_db, "--format", "json")
    assert code == 0
    info = json.loads(out)
    assert (info["steps"], info["traces"], info["segments"]) == (45_994, 7_680, 14)
    code, out, _ = run("export", "--db", click_db, "--workflow", "refund_request")
    assert code == 0 and out.count("\n") > 1000


def test_unusable_urls_exit_2_naming_the_problem() -> None:
    code, _, err = run("kpis", "--db", "clickhouse://h/bad-name")
    assert code == 2 and "--db" in err and "database name" in err
    code, _, err = run("kpis", "--db", "clickhouse://default@127.0.0.1:1/stepscope")
    assert code == 2 and "127.0.0.1" in err


def test_serve_stores_into_clickhouse(tmp_path) -> None:
    """The real SDK exporter -> `stepscope serve --db chdb://...` -> `stepscope kpis`."""
    url = chdb_url(tmp_path / "served", "agents")
    server = ServeProcess(url)           # type: ignore[arg-type]
    try:
        _send_traces_and_logs(server.port)
    finally:
        assert server.terminate() == 0, server.output      # SIGTERM drains the spool
    kpis = subprocess.run(
        [sys.executable, "-c", "from stepscope.cli import main; main()", "kpis", "--db", url,
         "--format", "json"], capture_output=True, text=True, timeout=300)
    assert kpis.returncode == 0, kpis.stderr
    (row,) = json.loads(kpis.stdout)
    assert (row["workflow"], row["runs"], row["llm_calls"], row["tool_calls"]) == (WORKFLOW, RUNS, RUNS, RUNS)
    assert (row["input_tokens"], row["output_tokens"]) == (RUNS * 1200, RUNS * 300)
