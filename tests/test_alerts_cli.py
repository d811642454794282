"""`stepscope alerts ...`: exit codes, JSON records, state files, silences, the runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from analytics_store import T0, make_store, root, tool
from click.testing import CliRunner

from stepscope.cli import cli
from stepscope.timeparse import iso_utc

H = timedelta(hours=1)
AT = iso_utc(T0 + H)
RULES = """
channels:
  log: {type: jsonl, path: "%(jsonl)s"}
rules:
  - name: tools
    description: Tools fail.
    metric: tool_success_rate
    scope: {workflow: each}
    window: 1h
    condition: {op: "<", threshold: 0.98}
    for: %(for)s
    severity: critical
    runbook_url: https://runbooks.example.org/tools
    channels: [log]
  - name: very_bad_tools
    metric: tool_success_rate
    scope: {workflow: each}
    window: 1h
    condition: {op: "<", threshold: 0.5}
"""
JSON_KEYS = ["rule", "state", "severity", "scope", "metric", "value", "threshold", "since",
             "runbook_url"]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    specs = []
    for i in range(4):
        start = T0 + timedelta(minutes=5 + 10 * i)
        specs.append(root(f"r{i}", "refund", start=start))
        specs.append(tool(f"r{i}", "t1", "issue_refund", start=start,
                          error="RateLimitError" if i == 0 else None, message="429"))
    return str(make_store(tmp_path_factory.mktemp("alerts-cli") / "db", specs).path)


def rules_file(tmp_path: Path, for_: str = "0s") -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES % {"jsonl": tmp_path / "alerts.jsonl", "for": for_})
    return str(path)


def run(*args: str):
    return CliRunner().invoke(cli, ["alerts", *args], catch_exceptions=False)


def test_validate_ok_and_problems(tmp_path):
    good = rules_file(tmp_path)
    result = run("validate", good)
    assert result.exit_code == 0
    assert result.output == f"{good}: 2 rules, channels: log, stdout — valid\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    metric: runs\n    window: 1h\n"
                   "    condition: {op: '>', threshold: 1}\n    severity: loud\n")
    result = run("validate", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: rule 'x' (#1): field 'severity': 'loud' is not one of info, warning, " \
           "critical" in result.output
    result = run("validate", str(bad), "--format", "json")
    assert result.exit_code == 2
    assert json.loads(result.output)["problems"] == [
        "rule 'x' (#1): field 'severity': 'loud' is not one of info, warning, critical"]


def test_check_fires_exit_1_with_the_issue_keys(db, tmp_path):
    result = run("check", "--rules", rules_file(tmp_path), "--db", db, "--at", AT,
                 "--step", "1h", "--format", "json")
    assert result.exit_code == 1
    (alert,) = json.loads(result.output)
    assert list(alert)[:len(JSON_KEYS)] == JSON_KEYS
    assert {k: alert[k] for k in JSON_KEYS} == {
        "rule": "tools", "state": "firing", "severity": "critical",
        "scope": {"workflow": "refund"}, "metric": "tool_success_rate", "value": 0.75,
        "threshold": 0.98, "since": AT, "runbook_url": "https://runbooks.example.org/tools"}


def test_check_nothing_fires_exit_0(db, tmp_path):
    quiet = iso_utc(T0 + 5 * H)  # the window holds no runs
    result = run("check", "--rules", rules_file(tmp_path), "--db", db, "--at", quiet,
                 "--format", "json")
    assert (result.exit_code, json.loads(result.output)) == (0, [])


def test_check_pending_is_not_firing(db, tmp_path):
    result = run("check", "--rules", rules_file(tmp_path, "2h"), "--db", db, "--at", AT,
                 "--format", "json")
    assert result.exit_code == 0
    assert [a["state"] for a in json.loads(result.output)] == ["pending"]


def test_check_usage_errors_exit_2(db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{name: x}]\n")
    result = run("check", "--rules", str(bad), "--db", db)
    assert result.exit_code == 2
    assert "Error: --rules: 3 problem(s)" in result.output
    assert "rule 'x' (#1): field 'metric': required" in result.output
    config = tmp_path / "stepscope.toml"
    config.write_text("[budgets]\ntenant_daily_usd = 'lots'\n")
    result = run("check", "--rules", rules_file(tmp_path), "--db", db, "--config", str(config))
    assert result.exit_code == 2
    assert "budgets.tenant_daily_usd: expected a number" in result.output
    result = run("check", "--rules", rules_file(tmp_path), "--db", db, "--at", "yesterday")
    assert result.exit_code == 2
    assert "--at" in result.output


def test_check_with_a_state_file_walks_history(db, tmp_path):
    state = str(tmp_path / "replay.sqlite")
    rules = rules_file(tmp_path, "1h")
    args = ("check", "--rules", rules, "--db", db, "--state", state, "--format", "json")
    first = run(*args, "--at", AT)
    assert first.exit_code == 0 and json.loads(first.output)[0]["state"] == "pending"
    second = run(*args, "--at", iso_utc(T0 + 2 * H))
    # the 1h window ending at T0+2h no longer holds the failure: the pending alert clears
    assert (second.exit_code, json.loads(second.output)) == (0, [])
    back = run(*args, "--at", AT)
    assert back.exit_code == 2
    assert "rounds must move forward in time" in back.output
    history = run("history", "--db", db, "--state", state, "--format", "json")
    assert [(h["from_state"], h["to_state"]) for h in json.loads(history.output)] == [
        (None, "pending"), ("pending", "inactive")]
    assert not (Path(db) / "alerts.sqlite").exists()


def test_run_once_notifies_and_keeps_state(db, tmp_path):
    state = str(tmp_path / "live.sqlite")
    rules = rules_file(tmp_path)
    env = {"STEPSCOPE_NOW": AT}
    result = CliRunner(env=env).invoke(
        cli, ["alerts", "run", "--rules", rules, "--db", db, "--state", state, "--once"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [(json.loads(x)["kind"], json.loads(x)["alert"]["rule"]) for x in lines] == [
        ("firing", "tools")]
    status = run("status", "--db", db, "--state", state, "--format", "json")
    assert [(a["rule"], a["state"], a["scope"]) for a in json.loads(status.output)] == [
        ("tools", "firing", "workflow=refund")]
    log = run("history", "--db", db, "--state", state, "--notifications", "--format", "json")
    assert [(n["channel"], n["status"], n["attempts"]) for n in json.loads(log.output)] == [
        ("log", "delivered", 1)]


def test_silence_commands(db, tmp_path):
    state = str(tmp_path / "s.sqlite")
    added = run("silence", "add", "rule=tools", "workflow=ref*", "--for", "2h", "--comment",
                "known", "--by", "ana", "--db", db, "--state", state, "--now", AT,
                "--format", "json")
    assert added.exit_code == 0
    silence = json.loads(added.output)
    assert (silence["matchers"], silence["ends_at"]) == (
        {"rule": "tools", "workflow": "ref*"}, iso_utc(T0 + 3 * H))
    listed = run("silence", "list", "--db", db, "--state", state, "--now", AT, "--format", "json")
    assert [s["id"] for s in json.loads(listed.output)] == [silence["id"]]
    assert run("silence", "expire", silence["id"], "--db", db, "--state", state,
               "--now", AT).exit_code == 0
    listed = run("silence", "list", "--db", db, "--state", state, "--now", AT, "--format", "json")
    assert json.loads(listed.output) == []
    wrong = run("silence", "add", "workflow", "--db", db, "--state", state)
    assert wrong.exit_code == 2 and "expected KEY=VALUE" in wrong.output


def test_run_stops_cleanly_on_sigterm(db, tmp_path):
    state = tmp_path / "live.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from stepscope.cli import main; main()", "alerts", "run",
         "--rules", rules_file(tmp_path), "--db", db, "--state", str(state), "--every", "1s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "STEPSCOPE_NOW": AT})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "alerts.jsonl").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "received SIGTERM" in err and err.rstrip().endswith("stopped")
    assert (tmp_path / "alerts.jsonl").read_text().count("\n") == 1
