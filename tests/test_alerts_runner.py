"""The continuous runner as `serve` hosts it: a background thread, rule reloads, a clean stop."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest
from analytics_store import T0, make_store, root, tool

from stepscope.alerts.engine import AlertRunner
from stepscope.alerts.state import AlertState
from stepscope.config import Config
from stepscope.timeparse import utc_now

RULE = """
channels:
  log: {{type: jsonl, path: "{jsonl}"}}
rules:
  - name: {name}
    metric: tool_success_rate
    scope: {{workflow: each}}
    window: 1h
    condition: {{op: "<", threshold: 0.98}}
    channels: [log]
"""


@pytest.fixture
def store(tmp_path):
    specs = []
    for i in range(4):
        start = T0 + timedelta(minutes=5 + 10 * i)
        specs.append(root(f"r{i}", "refund", start=start))
        specs.append(tool(f"r{i}", "t1", "issue_refund", start=start,
                          error="RateLimitError" if i == 0 else None, message="429"))
    return make_store(tmp_path / "db", specs)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_background_runner_notifies_reloads_rules_and_stops(store, tmp_path):
    jsonl = tmp_path / "alerts.jsonl"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.format(jsonl=jsonl, name="tools"))
    started = utc_now()
    state = AlertState(tmp_path / "alerts.sqlite")
    rounds = []
    runner = AlertRunner(store, rules, Config(), state=state,
                         clock=lambda: T0 + timedelta(hours=1) + (utc_now() - started),
                         on_round=rounds.append)
    thread = runner.start_background(timedelta(seconds=0.2))
    assert wait_for(lambda: jsonl.exists() and jsonl.read_text().count("\n") == 1)
    assert json.loads(jsonl.read_text())["alert"]["rule"] == "tools"

    rules.write_text("rules: [{name: broken}]\n")  # a bad edit keeps the last good rules
    os.utime(rules, (time.time() + 5, time.time() + 5))
    seen = len(rounds)
    assert wait_for(lambda: len(rounds) > seen + 1)
    assert [r.name for r in runner.ruleset.rules] == ["tools"]

    rules.write_text(RULE.format(jsonl=jsonl, name="tools_renamed"))
    os.utime(rules, (time.time() + 10, time.time() + 10))
    assert wait_for(lambda: [a.rule for a in state.alerts()] == ["tools_renamed"])

    runner.stop(timeout=30)
    assert not thread.is_alive()
    assert [json.loads(x)["alert"]["rule"] for x in jsonl.read_text().splitlines()] == [
        "tools", "tools_renamed"]
