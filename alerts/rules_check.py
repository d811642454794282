"""Validation of a rules file: every problem reported at once, naming rule and field.

A typo in an alert rule fails silently at 3 a.m., so nothing is guessed: unknown fields,
metrics, scope dimensions, budgets and channels are errors, with a suggestion where a
known name is close.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from stepscope.alerts.rule_types import (
    BUDGETS,
    BUILTIN_CHANNELS,
    CHANGES,
    CHANNEL_TYPES,
    DEFAULT_DRIFT_BASELINE,
    DEFAULT_NEW_CLUSTER_BASELINE,
    DEFAULT_REMIND_EVERY,
    DEFAULT_WEBHOOK_BACKOFF,
    DEFAULT_WEBHOOK_RETRIES,
    DEFAULT_WEBHOOK_TIMEOUT,
    DRIFT_FINDING,
    EACH,
    EVENT_METRICS,
    NEW_FAILURE_CLUSTER,
    OPERATORS,
    RULES_FILE_VERSION,
    SCOPE_DIMENSIONS,
    SEVERITIES,
    UNPRICED_MODEL_SEEN,
    WEBHOOK_FORMATS,
    Baseline,
    Channel,
    Condition,
    Rule,
    RuleSet,
)
from stepscope.analytics.kpis import KPI_KEYS
from stepscope.config import describe_value
from stepscope.timeparse import TimeSpecError, parse_duration

_RULE_KEYS = ("name", "description", "metric", "scope", "window", "condition", "min_runs", "for",
              "keep_firing_for", "every", "severity", "runbook_url", "labels", "channels",
              "remind_every")
_CONDITION_KEYS = ("op", "threshold", "budget", "change", "baseline", "min_severity")
_BASELINE_KEYS = ("offset", "window")
_TOP_KEYS = ("version", "defaults", "channels", "rules")
_DEFAULT_KEYS = ("channels", "remind_every")
_CHANNEL_KEYS = {
    "webhook": ("type", "url", "url_env", "format", "timeout", "retries", "backoff", "headers"),
    "stdout": ("type",),
    "jsonl": ("type", "path"),
}


class Checker:
    """Builds a RuleSet while collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, key: str, message: str) -> None:
        self.problems.append(f"{where}: field '{key}': {message}")

    def file(self, data: Any, source: str) -> RuleSet | None:
        if not isinstance(data, Mapping):
            self.problems.append(f"top level: expected a mapping with 'rules', got {_kind(data)}")
            return None
        self.unknown_keys("top level", data, _TOP_KEYS)
        version = data.get("version", RULES_FILE_VERSION)
        if version != RULES_FILE_VERSION:
            self.add("top level", "version", f"{version!r} is not a rules file version this "
                     f"stepscope reads (expected {RULES_FILE_VERSION})")
        defaults = self.mapping("defaults", "defaults", data.get("defaults", {}))
        self.unknown_keys("defaults", defaults, _DEFAULT_KEYS)
        channels = self.channels(data.get("channels", {}))
        default_channels = self.channel_list("defaults", defaults.get("channels", BUILTIN_CHANNELS),
                                             channels)
        remind = self.duration("defaults", "remind_every",
                               defaults.get("remind_every", DEFAULT_REMIND_EVERY), positive=True)
        raw_rules = data.get("rules")
        if not isinstance(raw_rules, list):
            self.add("top level", "rules", f"expected a list of rules, got {_kind(raw_rules)}")
            raw_rules = []
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for i, raw in enumerate(raw_rules, start=1):
            rule = self.rule(i, raw, channels, default_channels, remind or DEFAULT_REMIND_EVERY)
            if rule is None:
                continue
            if rule.name in names:
                self.add(f"rule {rule.name!r} (#{i})", "name",
                         f"the name is already used by rule #{names[rule.name]}")
            names[rule.name] = i
            rules.append(rule)
        for builtin in BUILTIN_CHANNELS:
            channels.setdefault(builtin, Channel(builtin, builtin))
        return RuleSet(tuple(rules), channels, source)

    # -- rules ----------------------------------------------------------------------------

    def rule(self, index: int, raw: Any, channels: dict[str, Channel],
             default_channels: tuple[str, ...], default_remind: timedelta) -> Rule | None:
        if not isinstance(raw, Mapping):
            self.problems.append(f"rule #{index}: expected a mapping, got {_kind(raw)}")
            return None
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            where = f"rule {name!r} (#{index})"
        else:
            where = f"rule #{index}"
            self.add(where, "name", "required: a non-empty string naming the rule"
                     if name is None else f"expected a non-empty string, got {_kind(name)}")
            name = f"#{index}"
        before = len(self.problems)
        self.unknown_keys(where, raw, _RULE_KEYS)
        metric = raw.get("metric")
        known_metrics = (*KPI_KEYS, *EVENT_METRICS)
        if metric is None:
            self.add(where, "metric", f"required; one of {', '.join(known_metrics)}")
        elif metric not in known_metrics:
            self.add(where, "metric", f"unknown metric {metric!r}{_suggest(metric, known_metrics)}; "
                     f"expected a KPI key of `stepscope kpis` or one of {', '.join(EVENT_METRICS)}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.add(where, "description", f"expected a string, got {_kind(description)}")
        scope = self.scope(where, raw.get("scope", {}), metric)
        window = self.duration(where, "window", raw.get("window"), positive=True, required=True)
        condition = self.condition(where, raw.get("condition"), metric, scope, window)
        min_runs = raw.get("min_runs", 0)
        if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 0:
            self.add(where, "min_runs", f"expected a whole number of runs >= 0, got {_kind(min_runs)}")
        for_ = self.duration(where, "for", raw.get("for", 0))
        keep = self.duration(where, "keep_firing_for", raw.get("keep_firing_for", 0))
        every = self.duration(where, "every", raw.get("every"), positive=True)
        severity = raw.get("severity", "warning")
        if severity not in SEVERITIES:
            self.add(where, "severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
        runbook = raw.get("runbook_url")
        if runbook is not None and (not isinstance(runbook, str) or not runbook.strip()):
            self.add(where, "runbook_url", f"expected a URL string, got {_kind(runbook)}")
        labels = self.string_map(where, "labels", raw.get("labels", {}))
        rule_channels = self.channel_list(where, raw.get("channels", default_channels), channels)
        remind = self.duration(where, "remind_every", raw.get("remind_every", default_remind),
                               positive=True)
        if len(self.problems) > before:
            return None
        return Rule(
            name=name, metric=metric, window=window, condition=condition,
            description=description.strip(), scope=scope, min_runs=min_runs, for_=for_,
            keep_firing_for=keep, every=every,
            severity=severity, runbook_url=runbook, labels=labels, channels=rule_channels,
            remind_every=remind,
        )

    def scope(self, where: str, raw: Any, metric: Any) -> tuple[tuple[str, str], ...]:
        raw = self.mapping(where, "scope", raw)
        out = []
        for dim, value in raw.items():
            key = f"scope.{dim}"
            if dim not in SCOPE_DIMENSIONS:
                self.add(where, key, f"unknown scope dimension{_suggest(dim, SCOPE_DIMENSIONS)}; "
                         f"expected one of {', '.join(SCOPE_DIMENSIONS)}")
                continue
            if not isinstance(value, str) or not value:
                self.add(where, key, f"expected a value or {EACH!r}, got {_kind(value)}")
                continue
            out.append((dim, value))
        scope = tuple(out)
        each = [d for d, v in scope if v == EACH]
        if metric == DRIFT_FINDING and any(d not in ("workflow", "model") for d in dict(scope)):
            self.add(where, "scope", "drift findings are per workflow and model; "
                     "only 'workflow' and 'model' can narrow them")
        if metric == NEW_FAILURE_CLUSTER and each:
            self.add(where, "scope", "new failure clusters alert once per cluster already; "
                     f"give fixed values, not {EACH!r}")
        if metric == UNPRICED_MODEL_SEEN and any(d not in ("workflow", "model") for d in each):
            self.add(where, "scope", "unpriced models alert once per model; only 'workflow' "
                     f"can also be {EACH!r}")
        return scope

    def condition(self, where: str, raw: Any, metric: Any, scope: tuple[tuple[str, str], ...],
                  window: timedelta | None) -> Condition:
        event = metric in EVENT_METRICS
        if raw is None:
            if event:
                return _event_condition(metric, window, None)
            self.add(where, "condition", "required: e.g. {op: '<', threshold: 0.98}")
            return Condition()
        raw = self.mapping(where, "condition", raw)
        self.unknown_keys(where, raw, _CONDITION_KEYS, prefix="condition.")
        op = raw.get("op", ">=" if event else None)
        if op not in OPERATORS:
            self.add(where, "condition.op", f"{op!r} is not one of {' '.join(OPERATORS)}"
                     if op is not None else f"required; one of {' '.join(OPERATORS)}")
        threshold = self.number(where, "condition.threshold", raw.get("threshold"))
        budget = raw.get("budget")
        change = raw.get("change")
        min_severity = raw.get("min_severity")
        if budget is not None:
            self.budget(where, budget, scope, metric)
            if threshold is not None:
                self.add(where, "condition.budget", "give either threshold or budget, not both")
        elif threshold is None and "threshold" not in raw and not event:
            self.add(where, "condition.threshold", "required (or a budget from [budgets])")
        if change is not None:
            if change not in CHANGES:
                self.add(where, "condition.change", f"{change!r} is not one of {', '.join(CHANGES)}")
            if event:
                self.add(where, "condition.change", f"does not apply to {metric}")
            if budget is not None:
                self.add(where, "condition.change", "a change is compared with a threshold, "
                         "not a budget")
        if min_severity is not None:
            if metric != DRIFT_FINDING:
                self.add(where, "condition.min_severity", f"applies to {DRIFT_FINDING} only")
            elif min_severity not in SEVERITIES:
                self.add(where, "condition.min_severity",
                         f"{min_severity!r} is not one of {', '.join(SEVERITIES)}")
        baseline = self.baseline(where, raw.get("baseline"), change, metric, window)
        if event:
            default = _event_condition(metric, window, baseline)
            return Condition(op=op if op in OPERATORS else default.op,
                             threshold=threshold if threshold is not None else default.threshold,
                             baseline=default.baseline, min_severity=min_severity)
        return Condition(op=op if op in OPERATORS else ">=", threshold=threshold, budget=budget,
                         change=change, baseline=baseline, min_severity=min_severity)

    def baseline(self, where: str, raw: Any, change: Any, metric: Any,
                 window: timedelta | None) -> Baseline | None:
        uses = change is not None or metric in (NEW_FAILURE_CLUSTER, DRIFT_FINDING)
        if raw is None:
            if change is not None:
                self.add(where, "condition.baseline",
                         "required with change: e.g. {offset: 7d} for week over week")
            return None
        if not uses:
            self.add(where, "condition.baseline", "only a change, new_failure_cluster or "
                     "drift_finding condition compares with a baseline")
            return None
        raw = self.mapping(where, "condition.baseline", raw)
        self.unknown_keys(where, raw, _BASELINE_KEYS, prefix="condition.baseline.")
        if change is not None:
            offset = self.duration(where, "condition.baseline.offset", raw.get("offset"),
                                   positive=True, required=True)
            length = self.duration(where, "condition.baseline.window",
                                   raw.get("window", window), positive=True)
        else:
            if "offset" in raw:
                self.add(where, "condition.baseline.offset", "the baseline of new clusters and "
                         "drift is the window just before the rule's window; give its length only")
            offset = window
            length = self.duration(where, "condition.baseline.window", raw.get("window"),
                                   positive=True, required=True)
        if offset is None or length is None:
            return None
        return Baseline(offset=offset, window=length)

    def budget(self, where: str, budget: Any, scope: tuple[tuple[str, str], ...],
               metric: Any) -> None:
        dims = {d for d, _ in scope}
        if budget not in BUDGETS:
            self.add(where, "condition.budget", f"{budget!r} is not a budget key; expected one "
                     f"of {', '.join(BUDGETS)}")
            return
        if budget == "latency_p95_ms":
            if "workflow" not in dims:
                self.add(where, "condition.budget", "latency_p95_ms budgets are per workflow "
                         "([budgets.workflows.NAME]); add scope.workflow")
            if metric not in ("latency_p95_ms", None):
                self.add(where, "condition.budget", f"latency_p95_ms is a budget for the "
                         f"latency_p95_ms metric, not {metric}")
            return
        if metric not in ("cost_usd", None):
            self.add(where, "condition.budget", f"{budget} is a spend budget; use it with "
                     f"metric cost_usd, not {metric}")
        if "workflow" in dims and "tenant" in dims:
            self.add(where, "condition.budget", "budgets are per workflow or per tenant; "
                     "the scope names both")
        if budget == "daily_usd" and not dims & {"workflow", "tenant"}:
            self.add(where, "condition.budget", "daily_usd budgets are per workflow or tenant; "
                     "add scope.tenant or scope.workflow")

    # -- channels -------------------------------------------------------------------------

    def channels(self, raw: Any) -> dict[str, Channel]:
        raw = self.mapping("channels", "channels", raw)
        out: dict[str, Channel] = {}
        for name, spec in raw.items():
            where = f"channel {name!r}"
            spec = self.mapping(where, "channels", spec)
            kind = spec.get("type")
            if kind not in CHANNEL_TYPES:
                self.add(where, "type", f"{kind!r} is not one of {', '.join(CHANNEL_TYPES)}"
                         if kind is not None else f"required; one of {', '.join(CHANNEL_TYPES)}")
                continue
            self.unknown_keys(where, spec, _CHANNEL_KEYS[kind])
            channel = self.channel(where, str(name), kind, spec)
            if channel is not None:
                out[str(name)] = channel
        return out

    def channel(self, where: str, name: str, kind: str, spec: Mapping) -> Channel | None:
        before = len(self.problems)
        if kind == "stdout":
            return Channel(name, kind)
        if kind == "jsonl":
            path = spec.get("path")
            if not isinstance(path, str) or not path:
                self.add(where, "path", "required: the JSON Lines file to append to")
            return None if len(self.problems) > before else Channel(name, kind, path=path)
        url, url_env = spec.get("url"), spec.get("url_env")
        if (url is None) == (url_env is None):
            self.add(where, "url", "give exactly one of url or url_env (an environment variable "
                     "holding the URL, so secrets stay out of git)")
        elif url is not None and (not isinstance(url, str)
                                  or not url.startswith(("http://", "https://"))):
            self.add(where, "url", f"expected an http:// or https:// URL, got {_kind(url)}")
        elif url_env is not None and (not isinstance(url_env, str) or not url_env):
            self.add(where, "url_env", f"expected an environment variable name, got {_kind(url_env)}")
        fmt = spec.get("format", "json")
        if fmt not in WEBHOOK_FORMATS:
            self.add(where, "format", f"{fmt!r} is not one of {', '.join(WEBHOOK_FORMATS)}")
        timeout = self.duration(where, "timeout", spec.get("timeout", DEFAULT_WEBHOOK_TIMEOUT),
                                positive=True)
        retries = spec.get("retries", DEFAULT_WEBHOOK_RETRIES)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            self.add(where, "retries", f"expected a whole number from 0 to 10, got {_kind(retries)}")
        backoff = self.duration(where, "backoff", spec.get("backoff", DEFAULT_WEBHOOK_BACKOFF))
        headers = self.string_map(where, "headers", spec.get("headers", {}))
        if len(self.problems) > before:
            return None
        return Channel(name, kind, url=url, url_env=url_env, format=fmt, timeout=timeout,
                       retries=retries, backoff=backoff, headers=headers)

    def channel_list(self, where: str, raw: Any, channels: dict[str, Channel]) -> tuple[str, ...]:
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list | tuple) or not all(isinstance(c, str) for c in raw):
            self.add(where, "channels", f"expected a list of channel names, got {_kind(raw)}")
            return ()
        known = (*channels, *BUILTIN_CHANNELS)
        for name in raw:
            if name not in known:
                self.add(where, "channels", f"no channel named {name!r}{_suggest(name, known)}; "
                         f"define it under the top-level 'channels'")
        return tuple(raw)

    # -- values ---------------------------------------------------------------------------

    def unknown_keys(self, where: str, raw: Mapping, allowed: tuple[str, ...],
                     prefix: str = "") -> None:
        for key in raw:
            if key not in allowed:
                self.add(where, f"{prefix}{key}", f"unknown field{_suggest(str(key), allowed)}; "
                         f"known fields: {', '.join(allowed)}")

    def mapping(self, where: str, key: str, raw: Any) -> Mapping:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.add(where, key, f"expected a mapping, got {_kind(raw)}")
            return {}
        return raw

    def string_map(self, where: str, key: str, raw: Any) -> tuple[tuple[str, str], ...]:
        raw = self.mapping(where, key, raw)
        out = []
        for k, v in raw.items():
            if not isinstance(v, str | int | float) or isinstance(v, bool):
                self.add(where, f"{key}.{k}", f"expected a string, got {_kind(v)}")
                continue
            out.append((str(k), str(v)))
        return tuple(out)

    def duration(self, where: str, key: str, raw: Any, *, positive: bool = False,
                 required: bool = False) -> timedelta | None:
        if raw is None:
            if required:
                self.add(where, key, "required: a duration such as 1h or 7d")
            return None
        if isinstance(raw, timedelta):
            value = raw
        elif raw == 0 and not isinstance(raw, bool):
            value = timedelta(0)
        elif isinstance(raw, str):
            try:
                value = parse_duration(raw)
            except TimeSpecError as exc:
                self.add(where, key, str(exc))
                return None
        else:
            self.add(where, key, f"expected a duration such as 1h or 7d, got {_kind(raw)}")
            return None
        if positive and value <= timedelta(0):
            self.add(where, key, "must be longer than zero")
            return None
        return value

    def number(self, where: str, key: str, raw: Any) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, str) and raw.strip().endswith("%"):
            try:
                return float(raw.strip()[:-1]) / 100
            except ValueError:
                pass
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            self.add(where, key, f"expected a number (or a percentage such as '30%'), got {_kind(raw)}")
            return None
        return float(raw)


def _event_condition(metric: str, window: timedelta | None, baseline: Baseline | None) -> Condition:
    """Event rules fire when they find at least one thing (one failure, one unpriced call)."""
    if metric == NEW_FAILURE_CLUSTER and baseline is None:
        baseline = Baseline(window or timedelta(0), DEFAULT_NEW_CLUSTER_BASELINE)
    if metric == DRIFT_FINDING and baseline is None:
        baseline = Baseline(window or timedelta(0), DEFAULT_DRIFT_BASELINE)
    return Condition(op=">=", threshold=1.0 if metric != DRIFT_FINDING else None, baseline=baseline)


def _suggest(value: Any, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return describe_value(value, mapping="a mapping")
