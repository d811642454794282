"""The alert rule schema as Python values: what a validated rules file becomes.

`stepscope.alerts.rules` reads YAML into these; `rules_check` validates it on the way.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stepscope.timeparse import format_duration

RULES_FILE_VERSION = 1
SEVERITIES = ("info", "warning", "critical")
SCOPE_DIMENSIONS = ("workflow", "model", "service_version", "tenant", "user")
EACH = "each"

#: Metrics beyond the KPI keys; each yields one alert per thing it finds.
NEW_FAILURE_CLUSTER = "new_failure_cluster"
DRIFT_FINDING = "drift_finding"
UNPRICED_MODEL_SEEN = "unpriced_model_seen"
EVENT_METRICS = (NEW_FAILURE_CLUSTER, DRIFT_FINDING, UNPRICED_MODEL_SEEN)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
CHANGES = ("relative", "absolute")
#: Budget keys of `[budgets]` a condition can compare with, and the scopes they need.
BUDGETS = ("latency_p95_ms", "daily_usd", "monthly_usd")
CHANNEL_TYPES = ("webhook", "stdout", "jsonl")
WEBHOOK_FORMATS = ("json", "slack")
BUILTIN_CHANNELS = ("stdout",)

DEFAULT_REMIND_EVERY = timedelta(hours=4)
DEFAULT_NEW_CLUSTER_BASELINE = timedelta(days=7)
DEFAULT_DRIFT_BASELINE = timedelta(days=7)
DEFAULT_WEBHOOK_TIMEOUT = timedelta(seconds=5)
DEFAULT_WEBHOOK_RETRIES = 3
DEFAULT_WEBHOOK_BACKOFF = timedelta(seconds=1)

class RulesError(ValueError):
    """The rules file breaks the schema; `problems` lists every problem (exit status 2)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class Baseline:
    """The window a value is compared with: `window` long, ending `offset` before now."""

    offset: timedelta
    window: timedelta


@dataclass(frozen=True)
class Condition:
    """When a rule's value is bad.

    The value is compared with `threshold` (a number), or with `budget` (looked up in the
    configuration for the scope value); with `change` set, what is compared is the change
    from the baseline window: `(value - base) / base` for relative, `value - base` for
    absolute. For drift findings `min_severity` keeps the weaker ones out.
    """

    op: str = ">="
    threshold: float | None = None
    budget: str | None = None
    change: str | None = None
    baseline: Baseline | None = None
    min_severity: str | None = None

    def holds(self, value: float, threshold: float) -> bool:
        return OPERATORS[self.op](value, threshold)

    def describe(self) -> str:
        target = f"budget {self.budget}" if self.budget else _number(self.threshold)
        if self.change == "relative" and self.threshold is not None:
            target = f"{self.threshold:+.0%}"
        if self.change:
            offset = self.baseline.offset if self.baseline else None
            return f"{self.change} change vs {_td(offset)} earlier {self.op} {target}"
        return f"{self.op} {target}"


@dataclass(frozen=True)
class Rule:
    """One validated alert rule. `scope` maps dimension to a fixed value or `each`."""

    name: str
    metric: str
    window: timedelta
    condition: Condition
    description: str = ""
    scope: tuple[tuple[str, str], ...] = ()
    min_runs: int = 0
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    every: timedelta | None = None
    severity: str = "warning"
    runbook_url: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    channels: tuple[str, ...] = BUILTIN_CHANNELS
    remind_every: timedelta = DEFAULT_REMIND_EVERY

    def due(self, at: datetime, last: datetime | None) -> bool:
        """Whether a round at `at` evaluates this rule: always, or with `every`, in the
        first round of each `every`-long slot of UTC time (so replays and live runs
        evaluate an expensive rule at the same instants)."""
        if self.every is None or last is None:
            return True
        size = self.every.total_seconds()
        return int(at.timestamp() // size) != int(last.timestamp() // size)

    @property
    def is_event(self) -> bool:
        """Event rules (clusters, drift, unpriced models) alert once per thing they find;
        when a thing is no longer found, its alert resolves."""
        return self.metric in EVENT_METRICS

    @property
    def each_dimensions(self) -> tuple[str, ...]:
        return tuple(d for d, v in self.scope if v == EACH)

    @property
    def fixed_scope(self) -> dict[str, str]:
        return {d: v for d, v in self.scope if v != EACH}

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Channel:
    """A notification channel as the rules file defines it."""

    name: str
    type: str
    url: str | None = None
    url_env: str | None = None
    format: str = "json"
    timeout: timedelta = DEFAULT_WEBHOOK_TIMEOUT
    retries: int = DEFAULT_WEBHOOK_RETRIES
    backoff: timedelta = DEFAULT_WEBHOOK_BACKOFF
    headers: tuple[tuple[str, str], ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    channels: dict[str, Channel] = field(default_factory=dict)
    source: str = "<rules>"

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def longest_for(self) -> timedelta:
        """How far back a stateless check must replay to judge `for` and `keep_firing_for`."""
        return max((r.for_ + r.keep_firing_for + (r.every or timedelta(0)) for r in self.rules),
                   default=timedelta(0))



def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _td(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "?"
