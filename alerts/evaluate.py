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

from stepscope.alerts.cluster_history import ClusterHistory, aligned, new_clusters_now
from stepscope.alerts.rule_types import (
    DRIFT_FINDING,
    EACH,
    NEW_FAILURE_CLUSTER,
    SEVERITIES,
    UNPRICED_MODEL_SEEN,
    Rule,
)
from stepscope.alerts.state import Observation
from stepscope.analytics.alert_queries import windowed_kpis, windowed_unpriced_calls
from stepscope.analytics.drift import Side, drift_findings
from stepscope.analytics.filters import Filters
from stepscope.config import Config
from stepscope.store import ReadConnection, Store
from stepscope.timeparse import Window, format_duration, iso_utc

NS_PER_S = 1_000_000_000
_KPIS, _UNPRICED = "kpis", "unpriced_calls"
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
        # KPI frames computed ahead by `prefetch`: {(fixed scope, by): {(start, end): frame}}
        self._prefetched: dict[tuple, dict[tuple[datetime, datetime], pl.DataFrame]] = {}
        self._data_start: tuple[int, datetime | None] | None = None
        self._cluster_histories: dict[str, ClusterHistory] = {}

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

    def prefetch(self, rules: Sequence[Rule], instants: Sequence[datetime],
                 starts: dict[str, datetime] | None = None) -> None:
        """Compute every window the rules will ask for at `instants` in a few queries.

        A replay of two weeks hour by hour asks for thousands of windows; one windowed
        query per rule scope replaces them (`analytics.alert_queries`). Evaluation itself
        is unchanged: it finds the frames here instead of querying one window at a time.
        `starts` limits a rule to the instants from its start on.
        """
        wanted: dict[tuple, set[tuple[datetime, datetime]]] = {}
        for rule in rules:
            start = (starts or {}).get(rule.name)
            mine = instants if start is None else [t for t in instants if t >= start]
            for key, window in self._windows_needed(rule, mine):
                wanted.setdefault(key, set()).add((window.start, window.end))
        for key, spans in wanted.items():
            self._fetch(key, [Window(s, e) for s, e in sorted(spans)])
        for rule in rules:
            start = (starts or {}).get(rule.name)
            mine = [t for t in instants if start is None or t >= start]
            if rule.metric == NEW_FAILURE_CLUSTER and len(mine) > 1:
                self._prefetch_clusters(rule, mine)

    def _prefetch_clusters(self, rule: Rule, instants: list[datetime]) -> None:
        """One clustering of the whole period, counted per hour (`cluster_history`)."""
        baseline = rule.condition.baseline
        assert baseline is not None
        if not aligned(instants, [rule.window, baseline.offset, baseline.window]):
            return
        start = min(instants) - baseline.offset - baseline.window
        self._cluster_histories[rule.name] = ClusterHistory.build(
            self.con, _filters(rule, None), start, max(instants), config=self.config)

    def _windows_needed(self, rule: Rule, instants: Sequence[datetime]):
        """(cache key, window) pairs; a key is (query, fixed scope, group keys)."""
        fixed = tuple(sorted(rule.fixed_scope.items()))
        cond = rule.condition
        for at in instants:
            if rule.metric == UNPRICED_MODEL_SEEN:
                extra = tuple(d for d in rule.each_dimensions if d != "model")
                yield (_UNPRICED, fixed, extra), Window(at - rule.window, at)
            elif rule.is_event:
                if cond.baseline is not None and rule.min_runs:
                    end = at - cond.baseline.offset
                    yield (_KPIS, fixed, ()), Window(end - cond.baseline.window, end)
            else:
                yield (_KPIS, fixed, rule.each_dimensions), Window(at - rule.window, at)
                if cond.change and cond.baseline is not None:
                    end = at - cond.baseline.offset
                    yield ((_KPIS, fixed, rule.each_dimensions),
                           Window(end - cond.baseline.window, end))

    def _fetch(self, key: tuple, windows: list[Window]) -> None:
        query, fixed, by = key
        filters = Filters(**_filter_fields(dict(fixed)))
        if query == _KPIS:
            frame = windowed_kpis(self.con, windows, filters, by=by, config=self.config)
        else:
            frame = windowed_unpriced_calls(self.con, windows, filters, by=by, config=self.config)
        parts = frame.partition_by("window_start", "window_end", as_dict=True)
        empty = frame.clear().drop("window_start", "window_end")
        cache = self._prefetched.setdefault(key, {})
        for w in windows:
            part = parts.get((w.start, w.end))
            cache[(w.start, w.end)] = empty if part is None else part.drop("window_start",
                                                                            "window_end")

    def _windowed(self, query: str, rule: Rule, window: Window, by: tuple[str, ...]
                  ) -> pl.DataFrame:
        """One window's frame: from the prefetch when there, else queried now."""
        key = (query, tuple(sorted(rule.fixed_scope.items())), by)
        span = (window.start, window.end)
        if span not in self._prefetched.get(key, {}):
            self._fetch(key, [window])
            frame = self._prefetched[key].pop(span)
            return frame
        return self._prefetched[key][span]

    def _kpis(self, rule: Rule, window: Window, by: tuple[str, ...]) -> pl.DataFrame:
        return self._windowed(_KPIS, rule, window, by)

    def data_start(self) -> datetime | None:
        """The start of the earliest stored step (the embedded store's manifest says it)."""
        generation = self.store.generation()
        if self._data_start is not None and self._data_start[0] == generation:
            return self._data_start[1]
        start_ns = self.store.first_start_ns()
        first = datetime.fromtimestamp(start_ns // NS_PER_S, UTC) if start_ns is not None else None
        self._data_start = (generation, first)
        return first

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
        return self._kpis(rule, window, rule.each_dimensions)

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
            base = self._kpis(rule, Window(base_start, at - baseline.offset), ())
            return bool(base.height) and base["runs"][0] >= rule.min_runs
        return True

    def _new_clusters(self, rule: Rule, at: datetime) -> RuleResult:
        if not self._baseline_covered(rule, at):
            return RuleResult(rule.name, at, complete=False)
        baseline = rule.condition.baseline
        assert baseline is not None
        window = Window(at - rule.window, at)
        base = Window(at - baseline.offset - baseline.window, at - baseline.offset)
        history = self._cluster_histories.get(rule.name)
        if history is not None and history.covers(base.start, at) and aligned([at], []):
            rows = history.new_between(window, base)
        else:
            rows = new_clusters_now(self.con, _filters(rule, None), window, base,
                                    config=self.config)
        result = RuleResult(rule.name, at)
        cond = rule.condition
        threshold = cond.threshold if cond.threshold is not None else 1.0
        for row in rows:
            scope = {**rule.fixed_scope, "cluster_id": row["cluster_id"]}
            detail = {
                "label": row["label"], "error_type": row["error_type"],
                "http_status": row["http_status"], "workflows": row["workflows"],
                "tools": row["tools"], "models": row["models"],
                "service_versions": row["service_versions"],
                "first_seen": iso_utc(row["first_seen"]), "last_seen": iso_utc(row["last_seen"]),
                "example_trace_ids": row["example_trace_ids"],
                "condition": f"a failure not seen in the {_fmt_td(baseline.window)} before "
                             f"the last {_fmt_td(rule.window)} fails {cond.op} {threshold:g} times",
                "window": _window_json(window.start, window.end),
            }
            result.observations.append(Observation(
                rule.name, scope, cond.holds(float(row["count"]), threshold), float(row["count"]),
                threshold, detail))
        return result

    def _unpriced(self, rule: Rule, at: datetime) -> RuleResult:
        window = Window(at - rule.window, at)
        extra = tuple(d for d in rule.each_dimensions if d != "model")
        frame = self._windowed(_UNPRICED, rule, window, extra)
        result = RuleResult(rule.name, at)
        cond = rule.condition
        threshold = cond.threshold if cond.threshold is not None else 1.0
        for row in frame.iter_rows(named=True):
            if row["model"] is None or any(row[d] is None for d in extra):
                continue
            scope = {**rule.fixed_scope, "model": row["model"], **{d: row[d] for d in extra}}
            value = float(row["unpriced_calls"])
            result.observations.append(Observation(
                rule.name, scope, cond.holds(value, threshold), value, threshold,
                {"condition": f"calls to a model with no known price {cond.op} {threshold:g} "
                              f"in the last {_fmt_td(rule.window)}",
                 "window": _window_json(window.start, window.end)}))
        return result

    def _drift(self, rule: Rule, at: datetime) -> RuleResult:
        if not self._baseline_covered(rule, at):
            return RuleResult(rule.name, at, complete=False)
        baseline = rule.condition.baseline
        assert baseline is not None
        current = Window(at - rule.window, at)
        base = Window(at - baseline.offset - baseline.window, at - baseline.offset)
        frame = drift_findings(self.con, baseline=Side(window=base), current=Side(window=current),
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


def _filter_fields(fixed: dict[str, str]) -> dict[str, tuple[str, ...]]:
    return {_FILTER_FIELDS[d]: (v,) for d, v in fixed.items()}


def _filters(rule: Rule, window: Window | None) -> Filters:
    fields = _filter_fields(rule.fixed_scope)
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
