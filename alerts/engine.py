"""One evaluation round, replays of history, and the continuous runner.

A round at instant `t`: every rule is evaluated (`evaluate`), each alert's state machine
takes one step (`state.step`), the new states, their transitions and the notifications
they owe are written in one SQLite transaction, and then the outbox is delivered
(`notify.Dispatcher`) — on a background thread in the runner, so a slow webhook never
delays the next evaluation.

Rounds must move forward in time on a given state: a replay (`alerts check --at`) uses
its own state (in memory, or a file named with `--state`), never the live one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from stepscope.alerts import notify
from stepscope.alerts.evaluate import Evaluator, RuleResult
from stepscope.alerts.rule_types import Rule, RulesError, RuleSet
from stepscope.alerts.rules import load_rules
from stepscope.alerts.silences import silenced_by, silences
from stepscope.alerts.state import (
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    Alert,
    AlertState,
    Observation,
    RuleInfo,
    StateError,
    db_time,
    step,
)
from stepscope.config import Config
from stepscope.store import Store
from stepscope.timeparse import iso_utc, parse_instant, utc_now

log = logging.getLogger("stepscope.alerts")

#: Resolved alerts stay in the current-alerts table this long (the history keeps them) ...
KEEP_RESOLVED = timedelta(days=7)
#: ... and the history, delivered notifications and delivery attempts this long.
KEEP_HISTORY = timedelta(days=90)


@dataclass
class RoundResult:
    """What one round did: the alerts after it, the changes it made, the errors it met."""

    at: datetime
    alerts: list[Alert] = field(default_factory=list)
    changes: list[tuple[str | None, Alert]] = field(default_factory=list)
    notifications: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == FIRING]

    def reportable(self) -> list[Alert]:
        """Pending and firing alerts, and those that resolved in this very round."""
        return [a for a in self.alerts
                if a.state in (PENDING, FIRING) or (a.state == RESOLVED and a.resolved_at == self.at)]


def rule_info(rule: Rule) -> RuleInfo:
    return RuleInfo(rule.name, rule.metric, rule.severity, rule.for_, rule.label_map,
                    rule.keep_firing_for, rule.runbook_url, rule.description)


class AlertEngine:
    """Evaluates a rule set against a store and keeps the alerts' state in `state`."""

    def __init__(self, ruleset: RuleSet, evaluator: Evaluator, state: AlertState, *,
                 notify_channels: bool = False):
        self.ruleset = ruleset
        self.evaluator = evaluator
        self.state = state
        self.notify_channels = notify_channels

    def last_evaluated_at(self) -> datetime | None:
        rows = self.state.read("SELECT value FROM meta WHERE key = 'last_evaluated_at'")
        return parse_instant(rows[0]["value"]) if rows else None

    def run_round(self, at: datetime, only: set[str] | None = None) -> RoundResult:
        """Evaluate every rule (or those named in `only`; the others keep their state)."""
        last = self.last_evaluated_at()
        if last is not None and at < last:
            where = self.state.path or "the in-memory state"
            raise StateError(
                f"{where} was last evaluated at {iso_utc(last)}; rounds must move forward in "
                f"time (replay an earlier instant with its own state, e.g. another --state file)")
        result = RoundResult(at)
        results = []
        last_runs = self._rule_rounds()
        for rule in self.ruleset.rules:
            if only is not None and rule.name not in only:
                continue
            if not rule.due(at, last_runs.get(rule.name)):
                continue
            try:
                results.append(self.evaluator.evaluate_rule(rule, at))
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("rule %s: evaluation failed", rule.name)
                result.errors.append(f"rule {rule.name!r}: evaluation failed: "
                                     f"{type(exc).__name__}: {exc}")
                results.append(RuleResult(rule.name, at, complete=False))
        self.apply(results, at, result)
        return result

    def _rule_rounds(self) -> dict[str, datetime]:
        """When each rule with an `every` was last evaluated on this state."""
        rows = self.state.read("SELECT key, value FROM meta WHERE key LIKE 'evaluated:%'")
        return {r["key"].split(":", 1)[1]: parse_instant(r["value"]) for r in rows}

    def replay(self, instants: Iterable[datetime]) -> list[RoundResult]:
        return [self.run_round(at) for at in instants]

    def apply(self, results: Sequence[RuleResult], at: datetime, out: RoundResult) -> None:
        """Step every alert with this round's observations and store it all atomically."""
        active_silences = silences(self.state, active_at=at) if self.notify_channels else []
        rules = {r.name: r for r in self.ruleset.rules}
        with self.state.transaction() as db:
            self.state.forget_rules_except(db, set(rules))
            existing = {a.fingerprint: a for a in self.state.alerts()}
            for res in results:
                rule = rules[res.rule]
                info = rule_info(rule)
                seen = {}
                for obs in res.observations:
                    seen[obs.fingerprint] = obs
                for fp, alert in existing.items():
                    if alert.rule != rule.name or fp in seen:
                        continue
                    # Not observed: an event rule no longer finds it (resolved), a KPI rule
                    # has no runs for it in the window (unknown, left as it is).
                    holds = False if rule.is_event and res.complete else None
                    seen[fp] = Observation(rule.name, alert.scope, holds, None, alert.threshold,
                                           alert.detail)
                for fp, obs in seen.items():
                    previous = existing.get(fp)
                    new = step(previous, obs, info, at)
                    if new is None:
                        continue
                    new = self._notify(db, rule, previous, new, at, active_silences, out)
                    self.state.save(db, previous, new)
                    if new.state != (previous.state if previous else None):
                        out.changes.append((previous.state if previous else None, new))
                    if new.state != INACTIVE:
                        out.alerts.append(new)
            evaluated = {r.rule for r in results}
            for name in evaluated:
                if rules[name].every is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               (f"evaluated:{name}", db_time(at)))
            out.alerts.extend(a for a in existing.values() if a.rule not in evaluated)
            db.execute("DELETE FROM alerts WHERE state = ? AND resolved_at < ?",
                       (RESOLVED, db_time(at - KEEP_RESOLVED)))
            self._prune_history(db, at)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_evaluated_at', ?)", (db_time(at),))
        out.alerts.sort(key=lambda a: (a.rule, sorted(a.scope.items())))

    @staticmethod
    def _prune_history(db, at: datetime) -> None:
        """Keep the state database small: drop history older than KEEP_HISTORY."""
        cutoff = db_time(at - KEEP_HISTORY)
        db.execute("DELETE FROM transitions WHERE at < ?", (cutoff,))
        db.execute("DELETE FROM delivery_attempts WHERE at < ?", (cutoff,))
        db.execute("DELETE FROM notifications WHERE created_at < ? AND status <> 'queued'"
                   " AND status <> 'failed'", (cutoff,))

    def _notify(self, db, rule: Rule, previous: Alert | None, new: Alert, at: datetime,
                active_silences, out: RoundResult) -> Alert:
        if not self.notify_channels:
            return new
        kind = notify.due_kind(new, previous.state if previous else None, at, rule.remind_every)
        if kind is None:
            return new
        silence = silenced_by(new, active_silences)
        if silence is not None:
            return replace(new, detail={**new.detail, "silenced_by": silence.id})
        notify.enqueue(db, new, kind, rule.channels, at)
        out.notifications += len(rule.channels)
        if kind == notify.RESOLVED_KIND:
            return replace(new, notified_at=at)
        return replace(new, notified_at=at, notified_firing=True)


def lookback_instants(at: datetime, longest_for: timedelta, every: timedelta) -> list[datetime]:
    """The instants a stateless check replays so that `for` is judged as a live run would:
    from one step before the longest `for` up to `at`, `every` apart."""
    steps = int(longest_for / every) + 1
    return [at - every * k for k in range(steps, -1, -1)]


def rule_lookback(rule: Rule) -> timedelta:
    """How long before an instant a stateless check must replay this rule: its `for`
    (to see it held throughout), `keep_firing_for` (to see it stay firing) and `every`
    (to evaluate it at least once)."""
    return rule.for_ + rule.keep_firing_for + (rule.every or timedelta(0))


class AlertRunner:
    """`alerts run`: evaluate every `every`, deliver notifications, until stopped.

    Also what `stepscope serve` runs beside the receiver: `start_background(every)`
    starts it on a daemon thread and `stop()` ends it cleanly after the current round.
    The rules file is read again when it changes; a broken edit keeps the last good rules.
    """

    def __init__(self, store: Store, rules_path: str | Path, config: Config, *,
                 state: AlertState | None = None, every: timedelta = timedelta(seconds=60),
                 stdout: TextIO | None = None, clock: Callable[[], datetime] = utc_now,
                 on_round: Callable[[RoundResult], None] | None = None):
        self.store = store
        self.rules_path = Path(rules_path)
        self.config = config
        self.state = state or AlertState.for_store(store.path)
        self.every = every
        self.stdout = stdout
        self.clock = clock
        self.on_round = on_round
        self.ruleset = load_rules(self.rules_path)
        self._rules_mtime = self._mtime()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivery: threading.Thread | None = None

    def _mtime(self) -> float | None:
        try:
            return self.rules_path.stat().st_mtime
        except OSError:
            return None

    def _reload_rules(self) -> None:
        mtime = self._mtime()
        if mtime == self._rules_mtime:
            return
        self._rules_mtime = mtime
        try:
            self.ruleset = load_rules(self.rules_path)
            log.info("reloaded %d rules from %s", len(self.ruleset.rules), self.rules_path)
        except RulesError as exc:
            log.error("keeping the previous rules; %s", exc)

    def run_once(self, evaluator: Evaluator, at: datetime | None = None) -> RoundResult:
        self._reload_rules()
        engine = AlertEngine(self.ruleset, evaluator, self.state, notify_channels=True)
        result = engine.run_round(at or self.clock())
        self.deliver()
        if self.on_round is not None:
            self.on_round(result)
        return result

    def deliver(self, wait: bool = False) -> None:
        """Deliver the outbox on a background thread (one at a time)."""
        if self._delivery is not None and self._delivery.is_alive():
            if not wait:
                return
            self._delivery.join()
        dispatcher = notify.Dispatcher(self.state, self.ruleset.channels, stdout=self.stdout,
                                       clock=self.clock)
        self._delivery = threading.Thread(target=self._dispatch, args=(dispatcher,),
                                          name="stepscope-alert-delivery", daemon=True)
        self._delivery.start()
        if wait:
            self._delivery.join()

    @staticmethod
    def _dispatch(dispatcher: notify.Dispatcher) -> None:
        try:
            dispatcher.dispatch()
        except Exception:  # delivery problems are recorded per attempt; never kill the runner
            log.exception("notification delivery failed")

    def run_forever(self) -> None:
        """Evaluate until `stop()` (or SIGTERM in the CLI); each round on the `every` grid."""
        with Evaluator(self.store, self.config) as evaluator:
            while not self._stop.is_set():
                started = self.clock()
                try:
                    self.run_once(evaluator, started)
                except StateError:
                    raise
                except Exception:
                    log.exception("alert evaluation round failed; trying again next round")
                spent = (self.clock() - started).total_seconds()
                self._stop.wait(max(0.0, self.every.total_seconds() - spent))
        if self._delivery is not None:
            self._delivery.join(timeout=30)

    def start_background(self, every: timedelta | None = None) -> threading.Thread:
        if every is not None:
            self.every = every
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="stepscope-alerts",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
