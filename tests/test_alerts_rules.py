"""The rules file: the schema, and validation messages that name the rule and the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepscope.alerts.rules import (
    Baseline,
    RulesError,
    default_rules_path,
    load_rules,
    parse_rules,
)

GOOD = """
version: 1
defaults:
  channels: [ops]
  remind_every: 2h
channels:
  ops:
    type: webhook
    url: http://127.0.0.1:9/hook
    format: slack
    timeout: 2s
    retries: 2
    backoff: 0.5s
  log: {type: jsonl, path: alerts.jsonl}
rules:
  - name: tool_success
    description: Tools fail.
    metric: tool_success_rate
    scope: {workflow: each, tenant: globex}
    window: 1h
    condition: {op: "<", threshold: "98%"}
    min_runs: 10
    for: 15m
    severity: critical
    runbook_url: https://runbooks.example.org/tools
    labels: {team: on-call}
  - name: cost_up
    metric: cost_per_completed_task_usd
    scope: {workflow: refund_request}
    window: 6h
    condition: {op: ">=", change: relative, threshold: 0.3, baseline: {offset: 7d}}
    channels: [log, stdout]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, source="rules.yaml")
    return info.value.problems


def one_rule(body: str) -> str:
    return "rules:\n  - name: r1\n" + "\n".join(f"    {line}" for line in body.strip().splitlines())


def test_a_full_rule_and_its_defaults():
    rules = parse_rules(GOOD)
    first, second = rules.rules
    assert first.scope == (("workflow", "each"), ("tenant", "globex"))
    assert first.each_dimensions == ("workflow",)
    assert first.fixed_scope == {"tenant": "globex"}
    assert first.condition.threshold == pytest.approx(0.98)
    assert first.for_ == timedelta(minutes=15)
    assert first.channels == ("ops",)
    assert first.remind_every == timedelta(hours=2)
    assert first.label_map == {"team": "on-call"}
    assert second.condition.change == "relative"
    assert second.condition.baseline == Baseline(timedelta(days=7), timedelta(hours=6))
    assert second.channels == ("log", "stdout")
    assert second.severity == "warning"
    ops = rules.channels["ops"]
    assert (ops.format, ops.retries, ops.timeout) == ("slack", 2, timedelta(seconds=2))


def test_the_shipped_default_rules_are_valid_and_cover_the_issue():
    rules = load_rules(default_rules_path())
    metrics = {r.name: r.metric for r in rules.rules}
    assert metrics == {
        "tool_call_success_low": "tool_success_rate",
        "latency_p95_over_budget": "latency_p95_ms",
        "completion_rate_down": "completion_rate",
        "cost_per_completed_task_up": "cost_per_completed_task_usd",
        "escalation_rate_up": "escalation_rate",
        "new_failure_cluster": "new_failure_cluster",
        "drift_finding": "drift_finding",
        "tenant_daily_spend_over_budget": "cost_usd",
        "unpriced_model_seen": "unpriced_model_seen",
    }
    assert rules.rule("tool_call_success_low").condition.threshold == 0.98
    assert rules.rule("latency_p95_over_budget").condition.budget == "latency_p95_ms"
    assert rules.rule("tenant_daily_spend_over_budget").condition.budget == "daily_usd"


def test_every_problem_is_reported_at_once_naming_rule_and_field():
    text = """
rules:
  - name: a
    metric: tool_sucess_rate
    window: 1h
    condition: {op: "<", threshold: 0.98}
  - name: b
    metric: completion_rate
    window: soon
    condition: {op: "=<", threshold: 0.9}
    severity: page
"""
    assert problems(text) == [
        "rule 'a' (#1): field 'metric': unknown metric 'tool_sucess_rate' (did you mean "
        "'tool_success_rate'?); expected a KPI key of `stepscope kpis` or one of "
        "new_failure_cluster, drift_finding, unpriced_model_seen",
        "rule 'b' (#2): field 'window': 'soon' is not a duration; expected N followed by s, m, h,"
        " d or w",
        "rule 'b' (#2): field 'condition.op': '=<' is not one of > >= < <= == !=",
        "rule 'b' (#2): field 'severity': 'page' is not one of info, warning, critical",
    ]


@pytest.mark.parametrize(("body", "expected"), [
    ("metric: runs\nwindow: 1h\ncondition: {op: '>', threshold: 1}\nfro: 5m",
     "rule 'r1' (#1): field 'fro': unknown field (did you mean 'for'?); known fields: name, "
     "description, metric, scope, window, condition, min_runs, for, keep_firing_for, every, "
     "severity, runbook_url, labels, channels, remind_every"),
    ("metric: runs\nwindow: 1h\ncondition: {op: '>'}",
     "rule 'r1' (#1): field 'condition.threshold': required (or a budget from [budgets])"),
    ("metric: runs\ncondition: {op: '>', threshold: 1}",
     "rule 'r1' (#1): field 'window': required: a duration such as 1h or 7d"),
    ("metric: runs\nwindow: 1h",
     "rule 'r1' (#1): field 'condition': required: e.g. {op: '<', threshold: 0.98}"),
    ("metric: runs\nwindow: 1h\nscope: {region: each}\ncondition: {op: '>', threshold: 1}",
     "rule 'r1' (#1): field 'scope.region': unknown scope dimension; expected one of workflow, "
     "model, service_version, tenant, user"),
    ("metric: runs\nwindow: 1h\nmin_runs: -3\ncondition: {op: '>', threshold: 1}",
     "rule 'r1' (#1): field 'min_runs': expected a whole number of runs >= 0, got int -3"),
    ("metric: latency_p95_ms\nwindow: 1h\ncondition: {op: '>', budget: latency_p95_ms}",
     "rule 'r1' (#1): field 'condition.budget': latency_p95_ms budgets are per workflow "
     "([budgets.workflows.NAME]); add scope.workflow"),
    ("metric: cost_usd\nwindow: 1d\ncondition: {op: '>', budget: weekly_usd}",
     "rule 'r1' (#1): field 'condition.budget': 'weekly_usd' is not a budget key; expected one "
     "of latency_p95_ms, daily_usd, monthly_usd"),
    ("metric: completion_rate\nwindow: 1d\ncondition: {op: '<', change: relative, threshold: -0.1}",
     "rule 'r1' (#1): field 'condition.baseline': required with change: e.g. {offset: 7d} for "
     "week over week"),
    ("metric: runs\nwindow: 1h\ncondition: {op: '>', threshold: 1}\nchannels: [pager]",
     "rule 'r1' (#1): field 'channels': no channel named 'pager'; define it under the top-level "
     "'channels'"),
    ("metric: runs\nwindow: 0s\ncondition: {op: '>', threshold: 1}",
     "rule 'r1' (#1): field 'window': must be longer than zero"),
    ("metric: new_failure_cluster\nwindow: 1d\nscope: {workflow: each}",
     "rule 'r1' (#1): field 'scope': new failure clusters alert once per cluster already; give "
     "fixed values, not 'each'"),
    ("metric: drift_finding\nwindow: 1d\ncondition: {min_severity: loud}",
     "rule 'r1' (#1): field 'condition.min_severity': 'loud' is not one of info, warning, "
     "critical"),
    ("metric: runs\nwindow: 1h\ncondition: {op: '>', threshold: yes}",
     "rule 'r1' (#1): field 'condition.threshold': expected a number (or a percentage such as "
     "'30%'), got boolean true"),
])
def test_one_problem_message(body, expected):
    assert problems(one_rule(body)) == [expected]


def test_unnamed_rule_is_named_by_position_and_duplicates_are_caught():
    text = """
rules:
  - metric: runs
    window: 1h
    condition: {op: '>', threshold: 1}
  - name: same
    metric: runs
    window: 1h
    condition: {op: '>', threshold: 1}
  - name: same
    metric: runs
    window: 1h
    condition: {op: '>', threshold: 1}
"""
    assert problems(text) == [
        "rule #1: field 'name': required: a non-empty string naming the rule",
        "rule 'same' (#3): field 'name': the name is already used by rule #2",
    ]


def test_channel_problems_name_the_channel():
    text = """
channels:
  hook: {type: webhook, format: teams, retries: 99}
  file: {type: jsonl}
  odd: {type: pager}
rules: []
"""
    assert problems(text) == [
        "channel 'hook': field 'url': give exactly one of url or url_env (an environment "
        "variable holding the URL, so secrets stay out of git)",
        "channel 'hook': field 'format': 'teams' is not one of json, slack",
        "channel 'hook': field 'retries': expected a whole number from 0 to 10, got int 99",
        "channel 'file': field 'path': required: the JSON Lines file to append to",
        "channel 'odd': field 'type': 'pager' is not one of webhook, stdout, jsonl",
    ]


def test_yaml_errors_and_duplicate_keys():
    assert problems("rules: [")[0].startswith("not valid YAML:")
    dup = problems("rules:\n  - name: a\n    name: b\n")
    assert len(dup) == 1 and "key 'name' appears twice in one mapping" in dup[0]
    assert problems("- just a list") == [
        "top level: expected a mapping with 'rules', got a list"]


def test_event_rules_have_defaults():
    rules = parse_rules("""
rules:
  - name: clusters
    metric: new_failure_cluster
    window: 3d
  - name: unpriced
    metric: unpriced_model_seen
    window: 7d
""")
    clusters, unpriced = rules.rules
    assert clusters.is_event and unpriced.is_event
    assert clusters.condition.threshold == 1.0
    assert clusters.condition.baseline == Baseline(timedelta(days=3), timedelta(days=7))
    assert unpriced.condition.op == ">="
