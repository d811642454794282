"""The alert state machine, its SQLite database, notifications owed, and silences."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from stepscope.alerts.engine import AlertEngine, lookback_instants
from stepscope.alerts.evaluate import RuleResult
from stepscope.alerts.rules import parse_rules
from stepscope.alerts.silences import (
    SilenceError,
    add_silence,
    expire_silence,
    parse_matchers,
    silences,
)
from stepscope.alerts.state import (
    FIRING,
    PENDING,
    RESOLVED,
    AlertState,
    Observation,
    RuleInfo,
    StateError,
    fingerprint,
    step,
)

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
INFO = RuleInfo("r", "tool_success_rate", "critical", for_=2 * H)


def obs(holds, value=0.9, scope=None):
    return Observation("r", scope or {"workflow": "w"}, holds, value, 0.98)


def test_pending_then_firing_after_for_then_resolved():
    a = step(None, obs(True), INFO, T0)
    assert (a.state, a.since, a.pending_since) == (PENDING, T0, T0)
    a = step(a, obs(True), INFO, T0 + H)
    assert a.state == PENDING
    a = step(a, obs(True, 0.8), INFO, T0 + 2 * H)
    assert (a.state, a.since, a.fired_at, a.value) == (FIRING, T0 + 2 * H, T0 + 2 * H, 0.8)
    a = step(a, obs(None), INFO, T0 + 3 * H)
    assert a.state == FIRING and a.evaluated_at == T0 + 3 * H
    a = step(a, obs(False, 0.99), INFO, T0 + 4 * H)
    assert (a.state, a.since, a.resolved_at) == (RESOLVED, T0 + 4 * H, T0 + 4 * H)
    again = step(a, obs(True), INFO, T0 + 5 * H)
    assert (again.state, again.pending_since, again.fired_at) == (PENDING, T0 + 5 * H, None)


def test_pending_that_clears_goes_away_and_for_zero_fires_at_once():
    a = step(None, obs(True), INFO, T0)
    assert step(a, obs(False), INFO, T0 + H).state == "inactive"
    assert step(a, obs(None), INFO, T0 + H).state == "inactive"
    assert step(None, obs(False), INFO, T0) is None
    assert step(None, obs(None), INFO, T0) is None
    now = RuleInfo("r", "m", "info", timedelta(0))
    assert step(None, obs(True), now, T0).state == FIRING


def test_fingerprint_ignores_scope_order():
    assert fingerprint("r", {"a": "1", "b": "2"}) == fingerprint("r", {"b": "2", "a": "1"})
    assert fingerprint("r", {"a": "1"}) != fingerprint("s", {"a": "1"})


# -- the engine with a scripted evaluator --------------------------------------------------

RULES = """
rules:
  - name: tools
    metric: tool_success_rate
    scope: {workflow: each}
    window: 1h
    condition: {op: "<", threshold: 0.98}
    for: 1h
    severity: critical
    remind_every: 3h
    labels: {team: on-call}
  - name: clusters
    metric: new_failure_cluster
    window: 1d
"""


class Script:
    """An evaluator that answers from a table: {(rule, at): [Observation, ...]}."""

    def __init__(self):
        self.answers = {}
        self.incomplete = set()

    def evaluate_rule(self, rule, at):
        return RuleResult(rule.name, at, list(self.answers.get((rule.name, at), [])),
                          complete=(rule.name, at) not in self.incomplete)


def tools(holds, workflow="refund", value=0.9):
    return Observation("tools", {"workflow": workflow}, holds, value, 0.98,
                       {"condition": "< 0.98"})


def make_engine(state=None, notify=True):
    script = Script()
    engine = AlertEngine(parse_rules(RULES), script, state or AlertState(), notify_channels=notify)
    return engine, script


def test_engine_notifies_once_then_reminds_then_resolves_once():
    engine, script = make_engine()
    for k in range(8):
        script.answers[("tools", T0 + k * H)] = [tools(k < 6)]
    kinds = []
    for k in range(8):
        engine.run_round(T0 + k * H)
        rows = engine.state.read("SELECT kind FROM notifications ORDER BY id")
        kinds.append([r["kind"] for r in rows])
    # fires at +1h, reminder 3h later (+4h), resolves at +6h; nothing more after that
    assert kinds[0] == [] and kinds[1] == ["firing"]
    assert kinds[3] == ["firing"] and kinds[4] == ["firing", "reminder"]
    assert kinds[6] == ["firing", "reminder", "resolved"] and kinds[7] == kinds[6]
    history = [(t["from_state"], t["to_state"], t["at"]) for t in engine.state.transitions()]
    assert history == [(None, PENDING, T0), (PENDING, FIRING, T0 + H),
                       (FIRING, RESOLVED, T0 + 6 * H)]


def test_missing_observation_keeps_kpi_alerts_and_resolves_event_alerts():
    engine, script = make_engine()
    cluster = Observation("clusters", {"cluster_id": "abc"}, True, 5.0, 1.0, {})
    script.answers[("tools", T0)] = [tools(True)]
    script.answers[("tools", T0 + H)] = [tools(True)]
    script.answers[("clusters", T0)] = [cluster]
    script.answers[("clusters", T0 + H)] = [cluster]
    engine.run_round(T0)
    engine.run_round(T0 + H)
    script.incomplete.add(("clusters", T0 + 2 * H))
    result = engine.run_round(T0 + 2 * H)  # nothing observed: tools unknown, clusters incomplete
    assert {a.rule: a.state for a in result.alerts} == {"tools": FIRING, "clusters": FIRING}
    result = engine.run_round(T0 + 3 * H)  # a complete event round without the cluster
    assert {a.rule: a.state for a in result.alerts} == {"tools": FIRING, "clusters": RESOLVED}
    assert [a.rule for a in result.reportable()] == ["clusters", "tools"]
    assert [a.rule for a in result.firing] == ["tools"]


def test_rounds_must_move_forward_on_one_state():
    engine, _ = make_engine()
    engine.run_round(T0 + H)
    with pytest.raises(StateError, match="rounds must move forward in time"):
        engine.run_round(T0)


def test_replay_without_notifications_writes_no_outbox():
    engine, script = make_engine(notify=False)
    script.answers[("tools", T0)] = [tools(True)]
    script.answers[("tools", T0 + H)] = [tools(True)]
    results = engine.replay([T0, T0 + H])
    assert results[-1].firing[0].scope == {"workflow": "refund"}
    assert engine.state.read("SELECT count(*) AS n FROM notifications")[0]["n"] == 0


def test_a_rule_with_every_is_evaluated_once_per_slot():
    rules = parse_rules("""
rules:
  - name: slow
    metric: new_failure_cluster
    window: 1d
    every: 2h
""")
    script = Script()
    seen = []
    script.evaluate_rule = lambda rule, at: seen.append(at) or RuleResult(rule.name, at)
    engine = AlertEngine(rules, script, AlertState())
    for k in range(5):
        engine.run_round(T0 + k * H)  # T0 is 09:00 UTC: slots 08-10, 10-12, 12-14
    assert seen == [T0, T0 + H, T0 + 3 * H]


def test_lookback_covers_the_longest_for():
    assert lookback_instants(T0, 2 * H, H) == [T0 - 3 * H, T0 - 2 * H, T0 - H, T0]
    assert lookback_instants(T0, timedelta(0), H) == [T0 - H, T0]


# -- silences ----------------------------------------------------------------------------


def test_silence_holds_back_notifications_until_it_expires():
    engine, script = make_engine()
    for k in range(6):
        script.answers[("tools", T0 + k * H)] = [tools(True), tools(True, workflow="triage")]
    silence = add_silence(engine.state, parse_matchers(["rule=tools", "workflow=ref*"]),
                          T0, T0 + 3 * H, T0, "ana", "known incident")
    for k in range(5):
        engine.run_round(T0 + k * H)
    rows = engine.state.read("SELECT kind, fingerprint, created_at FROM notifications ORDER BY id")
    triage = fingerprint("tools", {"workflow": "triage"})
    refund = fingerprint("tools", {"workflow": "refund"})
    assert [(r["kind"], r["fingerprint"]) for r in rows] == [
        ("firing", triage), ("firing", refund), ("reminder", triage)]
    assert rows[1]["created_at"].startswith("2026-11-10T12:00")  # when the silence ended
    assert [s.id for s in silences(engine.state, active_at=T0 + H)] == [silence.id]
    ended = expire_silence(engine.state, silence.id, T0 + H)
    assert ended.ends_at == T0 + H
    assert silences(engine.state, active_at=T0 + 2 * H) == []


def test_silence_matchers_are_checked():
    with pytest.raises(SilenceError, match="expected KEY=VALUE"):
        parse_matchers(["workflow"])
    with pytest.raises(SilenceError, match="at least one"):
        parse_matchers([])
    with pytest.raises(SilenceError, match="must end after it starts"):
        add_silence(AlertState(), {"rule": "x"}, T0, T0, T0)


# -- the database ------------------------------------------------------------------------


def test_state_file_is_wal_with_a_schema_version(tmp_path):
    path = tmp_path / "alerts.sqlite"
    engine, script = make_engine(AlertState(path))
    script.answers[("tools", T0)] = [tools(True)]
    engine.run_round(T0)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StateError, match="newer than this stepscope understands"):
        AlertState(path)


def _silence_many(path: str, who: str) -> None:
    state = AlertState(path)
    for i in range(40):
        add_silence(state, {"rule": f"{who}-{i}"}, T0, T0 + H, T0, who)
        silences(state)


def test_two_processes_write_one_state_file(tmp_path):
    path = str(tmp_path / "alerts.sqlite")
    AlertState(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_silence_many, args=(path, who)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(silences(AlertState(path))) == 80
