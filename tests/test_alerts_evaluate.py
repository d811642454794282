"""Rule evaluation on small stores worked out by hand (real OTLP, ingested as in production).

Prices: the user price below makes `acme-test` cost $1 per million input tokens and $2
per million output tokens, so a call of 1000 in / 100 out costs exactly $0.0012.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from analytics_store import T0, llm, make_store, root, tool

from stepscope.alerts.evaluate import Evaluator, budget_for, change
from stepscope.alerts.rules import parse_rules
from stepscope.config import config_from_dict

H = timedelta(hours=1)
AT = T0 + H
WEEK = timedelta(days=7)
CALL_USD = 0.0012
CONFIG = config_from_dict({
    "prices": [{"match": "acme-test", "input_per_mtok": 1.0, "output_per_mtok": 2.0}],
    "budgets": {"tenant_daily_usd": 0.003,
                "tenants": {"initech": {"daily_usd": 0.001}},
                "workflows": {"refund": {"latency_p95_ms": 5000}}},
})


def priced_run(trace, workflow, *, start, outcome="completed", tenant=None, model="acme-test"):
    return [root(trace, workflow, outcome, start=start, tenant=tenant),
            llm(trace, "llm", model, start=start, input_tokens=1000, output_tokens=100)]


def specs():
    out = []
    # refund: 10 runs, 2 tool calls each, 3 of the 20 calls fail; latencies 1..10 s
    for i in range(10):
        start = T0 + timedelta(minutes=5 * i)
        out.append(root(f"r{i}", "refund", start=start, duration_ms=1000.0 * (i + 1)))
        out.append(tool(f"r{i}", "t1", "issue_refund", start=start,
                        error="RateLimitError" if i < 3 else None, message="429 Too Many Requests"))
        out.append(tool(f"r{i}", "t2", "get_account", start=start))
    # triage: 10 runs whose tools all succeed
    for i in range(10):
        start = T0 + timedelta(minutes=5 * i)
        out.append(root(f"s{i}", "triage", start=start, duration_ms=2000))
        out.append(tool(f"s{i}", "t1", "kb_search", start=start))
    # billing: cost per completed task doubles week over week (2 of 4 runs fail now)
    for i in range(4):
        out += priced_run(f"b-now{i}", "billing", start=T0 + timedelta(minutes=i),
                          outcome="completed" if i < 2 else "failed")
        out += priced_run(f"b-then{i}", "billing", start=T0 - WEEK + timedelta(minutes=i))
    # tenants: globex spends 3 calls, initech 1 call in the last day
    for i in range(3):
        out += priced_run(f"g{i}", "reports", start=T0 + timedelta(minutes=i), tenant="globex")
    out += priced_run("n0", "reports", start=T0, tenant="initech")
    # a model no price list knows
    out += priced_run("u0", "reports", start=T0, model="mystery-model-x")
    # failures: a timeout seen last week and now, and a schema error that is new
    out.append(root("old", "settings", start=T0 - timedelta(days=10)))
    out.append(root("f-base", "settings", start=T0 - timedelta(days=3)))
    out.append(tool("f-base", "t1", "update_settings", start=T0 - timedelta(days=3),
                    error="TimeoutError", message="Timeout after 30000 ms"))
    for i in range(2):
        start = T0 + timedelta(minutes=10 * i)
        out.append(root(f"f{i}", "settings", start=start))
        out.append(tool(f"f{i}", "t1", "update_settings", start=start, error="SettingsSchemaError",
                        message=f"Settings API rejected update for account acct_{i}: unknown "
                                "field 'notify'"))
        out.append(tool(f"f{i}", "t2", "update_settings", start=start, error="TimeoutError",
                        message="Timeout after 30000 ms"))
    return out


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("alerts-eval") / "db", specs(), CONFIG)
    with Evaluator(store, CONFIG) as ev:
        yield ev


def one_rule(body: str):
    return parse_rules("rules:\n  - name: r\n" + "\n".join(
        f"    {line}" for line in body.strip().splitlines())).rules[0]


def found(evaluator, rule, at=AT):
    result = evaluator.evaluate_rule(rule, at)
    return {tuple(sorted(o.scope.items())): (o.holds, o.value, o.threshold)
            for o in result.observations}, result


def test_threshold_per_workflow(evaluator):
    rule = one_rule("""
metric: tool_success_rate
scope: {workflow: each}
window: 1h
condition: {op: "<", threshold: 0.98}
min_runs: 5
""")
    obs, _ = found(evaluator, rule)
    assert obs[(("workflow", "refund"),)] == (True, 17 / 20, 0.98)
    assert obs[(("workflow", "triage"),)] == (False, 1.0, 0.98)


def test_fewer_runs_than_min_runs_is_unknown(evaluator):
    rule = one_rule("""
metric: tool_success_rate
scope: {workflow: refund}
window: 1h
condition: {op: "<", threshold: 0.98}
min_runs: 11
""")
    obs, result = found(evaluator, rule)
    assert obs == {(("workflow", "refund"),): (None, 0.85, 0.98)}
    assert result.observations[0].detail["reason"] == "not enough data"


def test_latency_budget_from_the_configuration(evaluator):
    rule = one_rule("""
metric: latency_p95_ms
scope: {workflow: each}
window: 1h
condition: {op: ">", budget: latency_p95_ms}
""")
    obs, _ = found(evaluator, rule)
    # p95 of 1..10 s by linear interpolation: 9 + 0.55 * (10 - 9) = 9.55 s
    assert obs[(("workflow", "refund"),)] == (True, pytest.approx(9550.0), 5000.0)
    assert obs[(("workflow", "triage"),)] == (None, 2000.0, None)


def test_relative_change_week_over_week(evaluator):
    rule = one_rule("""
metric: cost_per_completed_task_usd
scope: {workflow: billing}
window: 1h
condition: {op: ">=", change: relative, threshold: "30%", baseline: {offset: 7d}}
""")
    obs, result = found(evaluator, rule)
    # now 4 calls / 2 completed = $0.0024; a week ago 4 calls / 4 completed = $0.0012
    assert obs == {(("workflow", "billing"),): (True, pytest.approx(1.0), 0.3)}
    detail = result.observations[0].detail
    assert detail["current"] == pytest.approx(2 * CALL_USD)
    assert detail["baseline"] == pytest.approx(CALL_USD)
    assert detail["baseline_window"] == {"start": "2026-11-10T09:00:00Z",
                                         "end": "2026-11-10T10:00:00Z"}


def test_daily_spend_per_tenant_against_its_budget(evaluator):
    rule = one_rule("""
metric: cost_usd
scope: {tenant: each}
window: 24h
condition: {op: ">", budget: daily_usd}
""")
    obs, _ = found(evaluator, rule)
    assert obs[(("tenant", "globex"),)] == (True, pytest.approx(3 * CALL_USD), 0.003)
    assert obs[(("tenant", "initech"),)] == (True, pytest.approx(CALL_USD), 0.001)


def test_unpriced_model_seen_names_the_model(evaluator):
    rule = one_rule("""
metric: unpriced_model_seen
window: 1d
""")
    obs, _ = found(evaluator, rule)
    assert obs == {(("model", "mystery-model-x"),): (True, 1.0, 1.0)}


def test_new_failure_cluster_against_the_week_before(evaluator):
    rule = one_rule("""
metric: new_failure_cluster
scope: {workflow: settings}
window: 1d
condition: {threshold: 2, baseline: {window: 7d}}
""")
    result = evaluator.evaluate_rule(rule, AT)
    assert result.complete
    (only,) = result.observations
    assert (only.holds, only.value, only.threshold) == (True, 2.0, 2.0)
    assert only.detail["error_type"] == "SettingsSchemaError"
    assert only.detail["tools"] == ["update_settings"]
    assert set(only.scope) == {"workflow", "cluster_id"}
    assert only.scope["workflow"] == "settings"


def test_new_failure_cluster_waits_for_a_whole_baseline(evaluator):
    rule = one_rule("""
metric: new_failure_cluster
window: 1d
condition: {baseline: {window: 14d}}
""")
    result = evaluator.evaluate_rule(rule, AT)
    assert (result.complete, result.observations) == (False, [])


def test_prefetched_windows_give_the_same_answers(evaluator, tmp_path):
    rule = one_rule("""
metric: cost_per_completed_task_usd
scope: {workflow: each}
window: 2h
condition: {op: ">=", change: relative, threshold: 0.3, baseline: {offset: 7d}}
""")
    instants = [AT, AT + H]
    direct = [evaluator.evaluate_rule(rule, t).observations for t in instants]
    store = evaluator.store
    with Evaluator(store, CONFIG) as fresh:
        fresh.prefetch([rule], instants)
        assert [fresh.evaluate_rule(rule, t).observations for t in instants] == direct


def test_one_clustering_of_a_replay_gives_the_same_new_clusters(evaluator):
    rule = one_rule("""
metric: new_failure_cluster
window: 1d
condition: {baseline: {window: 7d}}
""")
    instants = [AT, AT + H, AT + 30 * H]

    def outcome(ev):
        return [sorted((o.scope["cluster_id"], o.holds, o.value) for o in
                       ev.evaluate_rule(rule, t).observations) for t in instants]

    direct = outcome(evaluator)
    assert [len(d) for d in direct] == [2, 2, 0]  # the schema error and the 429s, then none
    with Evaluator(evaluator.store, CONFIG) as batched:
        batched.prefetch([rule], instants)
        assert rule.name in batched._cluster_histories
        assert outcome(batched) == direct


def test_change_and_budget_helpers():
    assert change(0.2, 0.1, "relative") == pytest.approx(1.0)
    assert change(0.2, 0.1, "absolute") == pytest.approx(0.1)
    assert budget_for(CONFIG, "daily_usd", {"tenant": "hooli"}) == 0.003
    assert budget_for(CONFIG, "daily_usd", {"tenant": "initech"}) == 0.001
    assert budget_for(CONFIG, "latency_p95_ms", {"workflow": "refund"}) == 5000
    assert budget_for(CONFIG, "monthly_usd", {}) is None
