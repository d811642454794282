"""Evaluating as of an instant: the CI gate (`alerts check`) and replays of history.

A check answers "what would be firing at `at`?" deterministically from the stored data:
without a state file it replays, in memory, the rounds a live `alerts run` would have
made over the longest `for` before `at` (so `for: 1h` means the condition held for an
hour, not just now), and never touches the live state. With a state file it makes one
round on that state, so repeated `--at` calls walk history like a live runner would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from stepscope.alerts.engine import AlertEngine, RoundResult, lookback_instants, rule_lookback
from stepscope.alerts.evaluate import Evaluator
from stepscope.alerts.rule_types import RuleSet
from stepscope.alerts.state import AlertState
from stepscope.config import Config
from stepscope.store import Store
from stepscope.timeparse import TimeSpecError

DEFAULT_CHECK_STEP = timedelta(minutes=5)
MAX_REPLAY_ROUNDS = 100_000


def check(store: Store, ruleset: RuleSet, config: Config, at: datetime, *,
          state: AlertState | None = None, step: timedelta = DEFAULT_CHECK_STEP) -> RoundResult:
    """The alerts as of `at` (see the module docstring for how `state` changes this)."""
    with Evaluator(store, config) as evaluator:
        if state is not None:
            return AlertEngine(ruleset, evaluator, state).run_round(at)
        instants = lookback_instants(at, ruleset.longest_for, step)
        # Each rule only over its own lookback: an expensive rule without `for` (drift)
        # costs two rounds, not one per step of the longest `for` of the file.
        starts = {r.name: at - rule_lookback(r) - step for r in ruleset.rules}
        evaluator.prefetch(ruleset.rules, instants, starts)
        engine = AlertEngine(ruleset, evaluator, AlertState())
        errors: list[str] = []
        for when in instants:
            due = {name for name, start in starts.items() if when >= start}
            if not due:
                continue
            result = engine.run_round(when, only=due)
            errors.extend(result.errors)
        result.errors = errors
        return result


def replay_instants(since: datetime, until: datetime, every: timedelta) -> list[datetime]:
    """`since`, `since + every`, ... up to and including `until`."""
    if every <= timedelta(0):
        raise TimeSpecError("the replay step must be longer than zero")
    count = int((until - since) / every) + 1
    if count > MAX_REPLAY_ROUNDS:
        raise TimeSpecError(f"{count} rounds is too many to replay; use a longer step")
    return [since + every * k for k in range(max(count, 0))]


def replay(store: Store, ruleset: RuleSet, config: Config, instants: list[datetime], *,
           state: AlertState | None = None) -> Iterator[RoundResult]:
    """Evaluate round after round over `instants` (in memory unless a state is given)."""
    with Evaluator(store, config) as evaluator:
        evaluator.prefetch(ruleset.rules, instants)
        engine = AlertEngine(ruleset, evaluator, state or AlertState())
        for at in instants:
            yield engine.run_round(at)
