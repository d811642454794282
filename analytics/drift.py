"""Drift: what changed between a baseline and a current window, per workflow and model.

Compared (see METRICS): run latency, steps per run, cost per run and the share of runs
with a failed step per workflow; the tool-call mix per workflow; per workflow and model,
call latency, input and output tokens per call, the share of `length` finishes, the
model-call error rate and the responded model version (a provider updating a model
behind the same name is a finding on its own). Call metrics are also compared over all
of a workflow's models when it uses several, which is where a model swap shows.

The two sides are time windows (default: the 7 days before the last 24 hours, and the
last 24 hours, ending at `now`) or service versions (`service_version=2.0.0`). The
statistics are in `drift_stats`: every finding passes a minimum sample size, a
family-wise error rate of 1% across all the tests of one call (Holm), and a minimum
effect (a 20% change), so a quiet week reports nothing.

A finding names a likely cause when one is visible: a service version, a model or a
responded model version of the same workflow that was absent from the baseline and
carries a real share of the current side.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from stepscope.analytics import drift_stats, run_tables, runner
from stepscope.analytics.clusters import from_ns
from stepscope.analytics.drift_stats import TestResult
from stepscope.analytics.filters import Filters
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import TimeSpecError, Window, iso_utc, parse_window, to_utc, utc_now

DEFAULT_CURRENT = timedelta(days=1)
DEFAULT_BASELINE = timedelta(days=7)
#: A candidate cause is "new": under this share of the baseline side ...
CAUSE_MAX_BASELINE_SHARE = 0.01
#: ... and at least this share of the current side.
CAUSE_MIN_CURRENT_SHARE = 0.10
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Metric:
    """One compared quantity: its test kind, and which direction is harmful."""

    name: str
    kind: str                       # continuous | rate | mix
    level: str                      # run | call | tool
    worse_when_higher: bool | None  # None: any change of a mix may matter
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("run_latency_ms", "continuous", "run", True, "root span duration of each run"),
    Metric("steps_per_run", "continuous", "run", True, "spans per run"),
    Metric("cost_per_run_usd", "continuous", "run", True,
           "cost of each run whose model calls are all priced"),
    Metric("run_error_rate", "rate", "run", True, "share of runs with a failed step"),
    Metric("tool_call_mix", "mix", "tool", None, "share of each tool among tool calls"),
    Metric("step_latency_ms", "continuous", "call", True, "duration of successful model calls"),
    Metric("input_tokens_per_call", "continuous", "call", True,
           "input tokens of successful model calls"),
    Metric("output_tokens_per_call", "continuous", "call", True,
           "output tokens of successful model calls"),
    Metric("length_finish_rate", "rate", "call", True,
           "share of successful calls that stopped at the token limit (finish reason length)"),
    Metric("llm_error_rate", "rate", "call", True, "share of model calls that failed"),
    Metric("responded_model_version", "mix", "call", None,
           "share of each model version the provider says answered"),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}


# -- the two sides --------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side of a comparison: runs started in a window, of a service version, or both."""

    window: Window | None = None
    service_version: str | None = None

    def filters(self) -> Filters:
        versions = (self.service_version,) if self.service_version else ()
        if self.window is None:
            return Filters(service_versions=versions)
        return Filters.window(self.window, service_versions=versions)

    def __str__(self) -> str:
        parts = [str(self.window)] if self.window else []
        if self.service_version:
            parts.append(f"service_version={self.service_version}")
        return " ".join(parts) or "all runs"


_VERSION_RE = re.compile(r"^\s*service_version\s*=\s*(\S+)\s*$")


def parse_side(text: str, now: datetime | None = None) -> Side:
    """`START..END`, a duration (the last N before now), or `service_version=V`."""
    match = _VERSION_RE.match(text)
    if match:
        return Side(service_version=match.group(1))
    try:
        return Side(window=parse_window(text, now))
    except TimeSpecError:
        raise TimeSpecError(
            f"{text!r} is neither a window (START..END, e.g. now-8d..now-1d, or a duration) "
            "nor a service version selection (service_version=2.0.0)"
        ) from None


def resolve_sides(baseline: Side | None, current: Side | None, now: datetime | None = None
                  ) -> tuple[Side, Side]:
    """Fill in missing sides: the current one defaults to the last 24 hours before `now`,
    the baseline to the 7 days before the current window. A service version selection
    has no window to place the other side against, so it needs both sides given."""
    if current is None:
        end = to_utc(now) if now is not None else utc_now()
        current = Side(window=Window(end - DEFAULT_CURRENT, end))
    if baseline is None:
        if current.window is None:
            raise TimeSpecError("a service version selection for the current side needs a "
                                "baseline too (e.g. service_version=1.9.4)")
        start = current.window.start
        baseline = Side(window=Window(start - DEFAULT_BASELINE, start),
                        service_version=current.service_version)
    return baseline, current


def _side_condition(side: Side, prefix: str) -> tuple[str, dict[str, Any]]:
    """The side's run condition, its parameters renamed so that two sides never clash."""
    where, params = side.filters().where_sql("r")
    renamed = re.sub(r"\$(\w+)", lambda m: f"${prefix}_{m.group(1)}", where)
    return renamed, {f"{prefix}_{k}": v for k, v in params.items()}


# -- the tests --------------------------------------------------------------------------


@dataclass
class _Test:
    metric: Metric
    workflow: str | None
    model: str | None
    result: TestResult
    p_adjusted: float = 1.0


def _sides(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return frame.filter(pl.col("side") == "baseline"), frame.filter(pl.col("side") == "current")


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame.get_column(column).drop_nulls().to_numpy().astype(np.float64)


def _counts(frame: pl.DataFrame, column: str, weight: str | None = None) -> dict[str, int]:
    if frame.is_empty():
        return {}
    agg = pl.col(weight).sum() if weight else pl.len()
    grouped = frame.filter(pl.col(column).is_not_null()).group_by(column).agg(agg.alias("n"))
    return {str(k): int(n) for k, n in grouped.iter_rows()}


def _run_tests(runs: pl.DataFrame, tools: pl.DataFrame, workflow: str) -> Iterable[_Test]:
    b, c = _sides(runs)
    for name, column in (("run_latency_ms", "latency_ms"), ("steps_per_run", "steps"),
                         ("cost_per_run_usd", "cost_usd")):
        result = drift_stats.continuous(_values(b, column), _values(c, column))
        if result:
            yield _Test(METRIC_BY_NAME[name], workflow, None, result)
    result = drift_stats.rate(int(b["had_error"].sum()), b.height, int(c["had_error"].sum()), c.height)
    if result:
        yield _Test(METRIC_BY_NAME["run_error_rate"], workflow, None, result)
    tb, tc = _sides(tools)
    result = drift_stats.mix(_counts(tb, "tool", "calls"), _counts(tc, "tool", "calls"))
    if result:
        yield _Test(METRIC_BY_NAME["tool_call_mix"], workflow, None, result)


def _call_tests(calls: pl.DataFrame, workflow: str, model: str | None) -> Iterable[_Test]:
    b, c = _sides(calls)
    ok_b, ok_c = b.filter(~pl.col("failed")), c.filter(~pl.col("failed"))
    for name, column in (("step_latency_ms", "duration_ms"),
                         ("input_tokens_per_call", "input_tokens"),
                         ("output_tokens_per_call", "output_tokens")):
        result = drift_stats.continuous(_values(ok_b, column), _values(ok_c, column))
        if result:
            yield _Test(METRIC_BY_NAME[name], workflow, model, result)
    fin_b = ok_b.filter(pl.col("finish_reason").is_not_null())
    fin_c = ok_c.filter(pl.col("finish_reason").is_not_null())
    result = drift_stats.rate(
        int((fin_b["finish_reason"] == "length").sum()), fin_b.height,
        int((fin_c["finish_reason"] == "length").sum()), fin_c.height,
    )
    if result:
        yield _Test(METRIC_BY_NAME["length_finish_rate"], workflow, model, result)
    if model is None:
        return
    result = drift_stats.rate(int(b["failed"].sum()), b.height, int(c["failed"].sum()), c.height)
    if result:
        yield _Test(METRIC_BY_NAME["llm_error_rate"], workflow, model, result)
    result = drift_stats.mix(_counts(ok_b, "response_model"), _counts(ok_c, "response_model"))
    if result:
        yield _Test(METRIC_BY_NAME["responded_model_version"], workflow, model, result)


def _by(frame: pl.DataFrame, column: str) -> dict[str, pl.DataFrame]:
    """The frame's rows per non-null value of `column` (one pass, not a filter per value)."""
    parts = frame.filter(pl.col(column).is_not_null()).partition_by(column, as_dict=True)
    return {key: part for (key,), part in parts.items()}


def _all_tests(runs: pl.DataFrame, calls: pl.DataFrame, tools: pl.DataFrame) -> list[_Test]:
    tests: list[_Test] = []
    runs_by, tools_by, calls_by = _by(runs, "workflow"), _by(tools, "workflow"), _by(calls, "workflow")
    for workflow in sorted(runs_by):
        tests.extend(_run_tests(runs_by[workflow], tools_by.get(workflow, tools.clear()), workflow))
        wf_calls = calls_by.get(workflow, calls.clear())
        per_model = _by(wf_calls, "model")
        if len(per_model) > 1:
            tests.extend(_call_tests(wf_calls, workflow, None))
        for model in sorted(per_model):
            tests.extend(_call_tests(per_model[model], workflow, model))
    return tests


# -- likely causes ------------------------------------------------------------------------


def _new_values(frame: pl.DataFrame, column: str, time_ns: pl.Expr,
                describe: Callable[[str], str]) -> list[str]:
    """Values of `column` absent from the baseline side and common on the current side."""
    b, c = _sides(frame.filter(pl.col(column).is_not_null()))
    if c.is_empty():
        return []
    base = _counts(b, column)
    base_total = max(1, sum(base.values()))
    stats = (c.group_by(column).agg(pl.len().alias("n"), time_ns.min().alias("first_ns"))
             .sort(["first_ns", column]))
    out = []
    for value, n, first_ns in stats.iter_rows():
        if (base.get(str(value), 0) / base_total <= CAUSE_MAX_BASELINE_SHARE
                and n / c.height >= CAUSE_MIN_CURRENT_SHARE):
            out.append(f"{describe(str(value))} (first seen {iso_utc(from_ns(int(first_ns)))})")
    return out


def _run_start_ns() -> pl.Expr:
    return pl.col("run_start").dt.epoch("ns")


def _causes(test: _Test, runs: pl.DataFrame, calls: pl.DataFrame) -> str | None:
    """New service versions of the workflow, new models in it (for metrics over all its
    models) and new responded versions of models it already used, in that order."""
    wf_runs = runs.filter(pl.col("workflow") == test.workflow)
    wf_calls = calls.filter(pl.col("workflow") == test.workflow)
    services = {v: s for v, s in wf_runs.select("service_version", "service_name").iter_rows()}
    found = _new_values(
        wf_runs, "service_version", _run_start_ns(),
        lambda v: f"service_version {v}" + (f" of {services[v]}" if services.get(v) else ""),
    )
    if test.model is None:
        found += _new_values(wf_calls, "model", pl.col("start_time_ns"), lambda v: f"model {v}")
    # A new model answers with its own version; only a model the baseline already used
    # can be updated silently.
    known = set(wf_calls.filter(pl.col("side") == "baseline")["model"].drop_nulls().to_list())
    if test.model is not None:
        known &= {test.model}
    found += _new_values(wf_calls.filter(pl.col("model").is_in(sorted(known))), "response_model",
                         pl.col("start_time_ns"), lambda v: f"responded model version {v}")
    return "; ".join(found) if found else None


# -- the findings -------------------------------------------------------------------------


def _compare(con: ReadConnection, baseline: Side | None, current: Side | None,
             filters: Filters | None, now: datetime | None, config: Config | None
             ) -> tuple[list[_Test], pl.DataFrame, pl.DataFrame]:
    """Every test the data allows, with Holm-adjusted p-values, and the rows behind them."""
    baseline, current = resolve_sides(baseline, current, now)
    run_tables.prepare(con, config or Config(), needs=("tool_parts",))
    b_where, params = _side_condition(baseline, "baseline")
    c_where, c_params = _side_condition(current, "current")
    run_where, r_params = (filters or Filters()).with_window(None, None).where_sql("r")
    params.update(c_params)
    params.update(r_params)
    parts = {"baseline_condition": b_where, "current_condition": c_where, "run_filter": run_where}
    runs = runner.run(con, "drift_runs", params, **parts)
    # Only the store segments holding the two sides' runs are read (a few days of a
    # long history, for the default windows).
    segments = run_tables.segments_of_runs(con, runner.render_sql("drift_sides", **parts), params)
    calls = runner.run(con, "drift_calls", params,
                       step_source=run_tables.segment_steps(con, segments), **parts)
    tools = runner.run(con, "drift_tools", params,
                       segments=run_tables.segment_condition(segments, "s"), **parts)
    tests = _all_tests(runs, calls, tools)
    for test, p in zip(tests, drift_stats.holm([t.result.p_value for t in tests]), strict=True):
        test.p_adjusted = p
    return tests, runs, calls


def drift_findings(con: ReadConnection, baseline: Side | None = None,
                   current: Side | None = None, *, filters: Filters | None = None,
                   now: datetime | None = None, config: Config | None = None,
                   alpha: float = drift_stats.FAMILY_ALPHA) -> pl.DataFrame:
    """Significant, material changes from `baseline` to `current`, worst first.

    Sides default as `resolve_sides` says. Columns: metric, workflow, model (null for
    run-level metrics and a workflow's pooled calls), baseline and current (structs: n,
    the statistic compared, and median / p95 / mean, events / rate, or shares),
    effect_size (ratio current/baseline, or the Jensen-Shannon distance of a mix),
    p_value (Holm-adjusted over every test made), severity (info, warning, critical)
    and likely_cause (null when none is visible). `filters` (e.g. workflows) narrows
    both sides; its time bounds are ignored.
    """
    tests, runs, calls = _compare(con, baseline, current, filters, now, config)
    rows = [_finding(t, runs, calls) for t in tests
            if t.p_adjusted <= alpha and t.result.large_enough]
    frame = pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row")
    if frame.is_empty():
        return frame
    return (frame.with_columns(pl.col("severity").replace_strict(SEVERITY_ORDER).alias("_rank"))
            .sort(["_rank", "metric", "workflow", "model"], nulls_last=True)
            .drop("_rank"))


def drift_tests(con: ReadConnection, baseline: Side | None = None, current: Side | None = None,
                *, filters: Filters | None = None, now: datetime | None = None,
                config: Config | None = None) -> pl.DataFrame:
    """Every comparison drift made, findings or not: what was compared and how it came out.

    Columns: metric, workflow, model, baseline, current (as in `drift_findings`),
    effect_size, p_value (Holm-adjusted), raw_p_value and large_enough (the effect
    reached the minimum). A finding is a row with p_value <= 0.01 and large_enough.
    """
    tests, _runs, _calls = _compare(con, baseline, current, filters, now, config)
    rows = [(t.metric.name, t.workflow, t.model, *_summaries(t), float(t.result.effect_size),
             float(t.p_adjusted), float(t.result.p_value), bool(t.result.large_enough))
            for t in tests]
    schema = {k: v for k, v in FINDING_SCHEMA.items() if k not in ("severity", "likely_cause")}
    schema.update({"raw_p_value": pl.Float64, "large_enough": pl.Boolean})
    return pl.DataFrame(rows, schema=schema, orient="row")


def _summaries(test: _Test) -> tuple[dict[str, Any], dict[str, Any]]:
    statistic = test.result.notes.get("statistic") or (
        "rate" if test.metric.kind == "rate" else "shares")
    return _summary(test.result.baseline, statistic), _summary(test.result.current, statistic)


def _finding(test: _Test, runs: pl.DataFrame, calls: pl.DataFrame) -> tuple:
    severity = drift_stats.severity(test.result, test.metric.worse_when_higher)
    if test.metric.name == "responded_model_version" and severity == "info":
        severity = "warning"  # a silent model update always deserves a look
    return (
        test.metric.name, test.workflow, test.model, *_summaries(test),
        float(test.result.effect_size), float(test.p_adjusted), severity,
        _causes(test, runs, calls),
    )


_SUMMARY_FIELDS = ("median", "p95", "mean", "events", "rate")
SUMMARY_TYPE = pl.Struct({
    "n": pl.Int64, "statistic": pl.String, "median": pl.Float64, "p95": pl.Float64,
    "mean": pl.Float64, "events": pl.Int64, "rate": pl.Float64,
    "shares": pl.List(pl.Struct({"value": pl.String, "share": pl.Float64})),
})
FINDING_SCHEMA = {
    "metric": pl.String, "workflow": pl.String, "model": pl.String,
    "baseline": SUMMARY_TYPE, "current": SUMMARY_TYPE, "effect_size": pl.Float64,
    "p_value": pl.Float64, "severity": pl.String, "likely_cause": pl.String,
}


def _summary(side: dict[str, Any], statistic: str) -> dict[str, Any]:
    shares = side.get("shares")
    return {
        "n": int(side["n"]), "statistic": statistic,
        **{k: side.get(k) for k in _SUMMARY_FIELDS},
        "shares": None if shares is None else [
            {"value": k, "share": v} for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
        ],
    }


def finding_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Findings as plain objects for JSON: summaries keep only their filled fields and
    show a mix as {value: share}."""
    records = frame.to_dicts()
    for row in records:
        for side in ("baseline", "current"):
            summary = {k: v for k, v in row[side].items() if v is not None}
            if "shares" in summary:
                summary["shares"] = {s["value"]: s["share"] for s in summary["shares"]}
            row[side] = summary
    return records
