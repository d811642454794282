"""Evaluating rules: each rule's value per scope value at an instant, through the analytics.

Nothing here writes SQL: KPI values come from `stepscope.analytics.kpis`, new failure
clusters from `stepscope.analytics.clusters`, drift findings from
`stepscope.analytics.drift`, so an alert and the dashboard always agree on a number.

A rule evaluated at instant `t` looks at the runs that started in `[t - window, t)`.
Each evaluation yields `Observation`s: the value, the threshold it was compared with,
and whether the condition holds — or None when there is not enough data to say (fewer
runs than `min_runs`, no budget for this scope value, a baseline with no runs), which
leaves the alert as it was rather than resolving it on a quiet night.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from stepscope.alerts.rules import (
    DRIFT_FINDING,
    EACH,
    NEW_FAILURE_CLUSTER,
    SEVERITIES,
    UNPRICED_MODEL_SEEN,
    Rule,
)
from stepscope.alerts.state import Observation
from stepscope.analytics import clusters, kpis
from stepscope.analytics.filters import Filters

from stepscope.config import Config
from stepscope.store import ReadConnection, Store
from stepscope.timeparse import Window, format_duration, iso_utc

NS_PER_S = 1_000_000_000
#: Scope dimensions as filter fields of `stepscope.analytics.filters.Filters`.
_FILTER_FIELDS = {"workflow": "workflows", "model": "models", "service_version": "service_versions",
                  "tenant": "tenants", "user": "users"}


@dataclass(frozen=True)
class RuleResult:
    """A rule's observations at one instant.

    `complete` is False when the rule could not be evaluated as a whole (its baseline
    lies before the first data): then alerts it did not observe keep their state.
    """

    rule: str
    at: datetime
    observations: list[Observation] = field(default_factory=list)
    complete: bool = True


class Evaluator:
    """Evaluates rules against one store through one read connection, reused for speed."""

    def __init__(self, store: Store, config: Config, con: ReadConnection | None = None):
        self.store = store
        self.config = config
        self.con = con or store.connect()
        self._owns_con = con is None

    def close(self) -> None:
        if self._owns_con:
            self.con.close()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------

    def evaluate(self, rules: Sequence[Rule], at: datetime) -> list[RuleResult]:
        return [self.evaluate_rule(rule, at) for rule in rules]

    def evaluate_rule(self, rule: Rule, at: datetime) -> RuleResult:
        if rule.metric == NEW_FAILURE_CLUSTER:
            return self._new_clusters(rule, at)
        if rule.metric == DRIFT_FINDING:
            return self._drift(rule, at)
        if rule.metric == UNPRICED_MODEL_SEEN:
            return self._unpriced(rule, at)
        return self._kpi(rule, at)

    def data_start(self) -> datetime | None:
        """The start of the earliest stored step (from the manifest, no query)."""
        starts = [s["min_start_ns"] for s in self.store.manifest().get("segments", [])
                  if s.get("min_start_ns") is not None]
        if not starts:
            return None
        first = min(starts)
        return datetime.fromtimestamp(first // NS_PER_S, UTC)

    # -- KPI rules ------------------------------------------------------------------------

    def _kpi(self, rule: Rule, at: datetime) -> RuleResult:
        dims = rule.each_dimensions
        current = self._kpi_frame(rule, Window(at - rule.window, at))
        baseline = None
        cond = rule.condition
        if cond.change and cond.baseline is not None:
            end = at - cond.baseline.offset
            baseline = _by_scope(self._kpi_frame(rule, Window(end - cond.baseline.window, end)),
                                 dims)
        result = RuleResult(rule.name, at)
        for row in current.iter_rows(named=True):
            scope = _scope_of(rule, row)
            if scope is None:
                continue
            value = row[rule.metric]
            detail: dict[str, Any] = {"runs": row["runs"], "condition": cond.describe(),
                                      "window": _window_json(at - rule.window, at)}
            holds, threshold, compared = None, cond.threshold, value
            if row["runs"] < rule.min_runs or value is None:
                detail["reason"] = "not enough data"
            elif cond.budget is not None:
                threshold = budget_for(self.config, cond.budget, scope)
                if threshold is None:
                    detail["reason"] = f"no {cond.budget} budget configured for this scope"
                else:
                    holds = cond.holds(value, threshold)
            elif cond.change and baseline is not None:
                base = baseline.get(tuple(row[d] for d in dims))
                compared = None
                detail.update(current=value, baseline=None if base is None else base[rule.metric])
                if base is None or base["runs"] < rule.min_runs or base[rule.metric] is None:
                    detail["reason"] = "not enough data in the baseline window"
                elif cond.change == "relative" and base[rule.metric] == 0:
                    detail["reason"] = "baseline value is 0: no relative change"
                else:
                    compared = change(value, base[rule.metric], cond.change)
                    holds = cond.holds(compared, cond.threshold)
                end = at - cond.baseline.offset
                detail["baseline_window"] = _window_json(end - cond.baseline.window, end)
            else:
                holds = cond.holds(value, threshold)
            result.observations.append(Observation(rule.name, scope, holds, compared, threshold,
                                                   detail))
        return result

    def _kpi_frame(self, rule: Rule, window: Window) -> pl.DataFrame:
        return kpis.kpis(self.con, _filters(rule, window), by=rule.each_dimensions,
                         config=self.config)

    # -- event rules ----------------------------------------------------------------------

    def _baseline_covered(self, rule: Rule, at: datetime) -> bool:
        """True when the data reaches back over the whole baseline (else everything is "new")."""
        baseline = rule.condition.baseline
        start = self.data_start()
        if baseline is None or start is None:
            return start is not None
        base_start = at - baseline.offset - baseline.window
        if start > base_start:
            return False
        if rule.min_runs:
            base = kpis.kpis(self.con, _filters(rule, Window(base_start, at - baseline.offset)),
                             by=(), config=self.config)
            return bool(base.height) and base["runs"][0] >= rule.min_runs
        return True

    def _new_clusters(self, rule: Rule, at: datetime) -> RuleResult:
        if not self._baseline_covered(rule, at):
            return RuleResult(rule.name, at, complete=False)
        baseline = rule.condition.baseline
        assert baseline is not None
        window = Window(at - rule.window, at)
        frame = clusters.failure_clusters(
            self.con, _filters(rule, window),
            baseline=Window(at - baseline.offset - baseline.window, at - baseline.offset),
            now=at, examples=3)
        result = RuleResult(rule.name, at)
        cond = rule.condition
        for row in frame.filter(pl.col("is_new")).iter_rows(named=True):
            scope = {**rule.fixed_scope, "cluster_id": row["cluster_id"]}
            threshold = cond.threshold if cond.threshold is not None else 1.0
            detail = {
                "label": row["label"], "error_type": row["error_type"],
                "http_status": row["http_status"], "workflows": row["workflows"],
                "tools": row["tools"], "models": row["models"],
                "service_versions": row["service_versions"],
                "first_seen": iso_utc(row["first_seen"]), "last_seen": iso_utc(row["last_seen"]),
                "example_trace_ids": row["example_trace_ids"],
                "condition": f"a failure not seen in the {_fmt_td(baseline.window)} before "
                             f"the last {_fmt_td(rule.window)} fails {cond.op} {threshold:g} times",
            }
            result.observations.append(Observation(
                rule.name, scope, cond.holds(float(row["count"]), threshold), float(row["count"]),
                threshold, detail))
        return result

    def _unpriced(self, rule: Rule, at: datetime) -> RuleResult:
        window = Window(at - rule.window, at)
        filters = _filters(rule, window)
        result = RuleResult(rule.name, at)
        total = kpis.kpis(self.con, filters, by=(), config=self.config)
        if not total.height or not (total["unpriced_llm_calls"][0] or 0):
            return result
        extra = [d for d in rule.each_dimensions if d != "model"]
        frame = kpis.step_kpis(self.con, filters, by=("model", *extra), config=self.config)
        cond = rule.condition
        threshold = cond.threshold if cond.threshold is not None else 1.0
        for row in frame.filter(pl.col("unpriced_calls") > 0).iter_rows(named=True):
            if row["model"] is None or any(row[d] is None for d in extra):
                continue
            scope = {**rule.fixed_scope, "model": row["model"], **{d: row[d] for d in extra}}
            value = float(row["unpriced_calls"])
            result.observations.append(Observation(
                rule.name, scope, cond.holds(value, threshold), value, threshold,
                {"calls": row["calls"], "step_kind": row["step_kind"],
                 "condition": f"calls to a model with no known price {cond.op} {threshold:g} "
                              f"in the last {_fmt_td(rule.window)}",
                 "window": _window_json(window.start, window.end)}))
        return result

    def _drift(self, rule: Rule, at: datetime) -> RuleResult:
        from stepscope.analytics import drift  # the drift analytics are optional at import

        if not self._baseline_covered(rule, at):
            return RuleResult(rule.name, at, complete=False)
        baseline = rule.condition.baseline
        assert baseline is not None
        current = Window(at - rule.window, at)
        base = Window(at - baseline.offset - baseline.window, at - baseline.offset)
        frame = drift.drift_findings(self.con, baseline=base, current=current,
                                     filters=_filters(rule, None), config=self.config)
        cond = rule.condition
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        floor = rank[cond.min_severity] if cond.min_severity else 0
        result = RuleResult(rule.name, at)
        for row in frame.iter_rows(named=True):
            if rank.get(row["severity"], 0) < floor:
                continue
            scope = {**rule.fixed_scope, "workflow": row["workflow"], "model": row["model"],
                     "drift_metric": row["metric"]}
            scope = {k: v for k, v in scope.items() if v is not None}
            value = row["effect_size"]
            holds = True if cond.threshold is None or value is None else cond.holds(value,
                                                                                    cond.threshold)
            result.observations.append(Observation(
                rule.name, scope, holds, value, cond.threshold,
                {"baseline": row["baseline"], "current": row["current"],
                 "p_value": row["p_value"], "finding_severity": row["severity"],
                 "likely_cause": row.get("likely_cause"),
                 "condition": f"a drift finding of severity {cond.min_severity or 'info'} or "
                              "above",
                 "window": _window_json(current.start, current.end),
                 "baseline_window": _window_json(base.start, base.end)}))
        return result


# -- helpers --------------------------------------------------------------------------------


def change(value: float, base: float, kind: str) -> float:
    """Relative change `(value - base) / |base|`, or the absolute difference."""
    if kind == "relative":
        return (value - base) / abs(base)
    return value - base


def budget_for(config: Config, budget: str, scope: dict[str, str]) -> float | None:
    """The budget of `[budgets]` that applies to a scope value (None when none is set)."""
    budgets = config.budgets
    workflow, tenant = scope.get("workflow"), scope.get("tenant")
    if budget == "latency_p95_ms":
        wf = budgets.workflows.get(workflow or "")
        return wf.latency_p95_ms if wf else None
    if tenant is not None:
        own = budgets.tenants.get(tenant)
        value = getattr(own, budget, None) if own else None
        if value is None and budget == "daily_usd":
            value = budgets.tenant_daily_usd
        return value
    if workflow is not None:
        wf = budgets.workflows.get(workflow)
        return getattr(wf, budget, None) if wf else None
    return budgets.monthly_usd if budget == "monthly_usd" else None


def _filters(rule: Rule, window: Window | None) -> Filters:
    fields = {_FILTER_FIELDS[d]: (v,) for d, v in rule.fixed_scope.items()}
    if window is None:
        return Filters(**fields)
    return Filters(since=window.start, until=window.end, **fields)


def _scope_of(rule: Rule, row: dict[str, Any]) -> dict[str, str] | None:
    scope = {}
    for dim, value in rule.scope:
        if value == EACH:
            if row.get(dim) is None:
                return None
            scope[dim] = str(row[dim])
        else:
            scope[dim] = value
    return scope


def _by_scope(frame: pl.DataFrame, dims: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    return {tuple(row[d] for d in dims): row for row in frame.iter_rows(named=True)}


def _window_json(start: datetime, end: datetime) -> dict[str, str | None]:
    return {"start": iso_utc(start), "end": iso_utc(end)}


def _fmt_td(value: timedelta) -> str:
    return format_duration(value)
