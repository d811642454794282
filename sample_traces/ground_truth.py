"""Measure each planted incident in the generated data and write `ground_truth.json`.

The numbers are measured on exactly what was written (spans that had ended by the end
of the data), with the definitions the KPIs use: a run is a trace whose root span is
present; it belongs to the window its root span *starts* in; run latency is the root's
duration; percentiles interpolate linearly between order statistics (numpy's default);
cost is priced with genai-prices at the call's time, cached input at the cache-read
price and cache writes at the cache-write price; cost per completed task divides the
cost of all runs (failed ones too) by the completed runs. The schema is documented in
`README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from genai_prices import Usage, calc_price

from . import company
from .engine import COMPLETED, ESCALATED, FAILED, NS_PER_DAY, OUTCOMES, Runs, StepBlock
from .incidents import (
    ESCALATION_END_RATE,
    ESCALATION_START_RATE,
    INCIDENTS,
    TRIAGE_MODEL_AFTER,
    TRIAGE_MODEL_BEFORE,
    IncidentPlan,
)

SCHEMA_VERSION = 1
BASELINE_NS = 7 * NS_PER_DAY
RUN_COLUMNS = ("workflow", "start_ns", "latency_ms", "outcome", "version", "cost",
               "output_tokens", "llm_calls", "unpriced")
STEP_COLUMNS = ("workflow", "step", "start_ns", "run", "error_type", "http", "request_model",
                "response_model", "output_tokens")
KEPT_TOOLS = ("issue_refund", "update_settings")
KEPT_LLM_STEPS = (("support_triage", "draft_reply"), ("account_config", "plan_changes"),
                  ("account_config", "confirm"), ("weekly_report", "caption_chart"))


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns // 1000 / 1e6, UTC)
    text = dt.isoformat(timespec="microseconds" if ns % 1_000_000_000 else "seconds")
    return text.replace("+00:00", "Z")


class PriceBook:
    """Per-token USD rates from genai-prices, looked up once per (model, provider, day)."""

    def __init__(self) -> None:
        self._rates: dict[tuple[str, str, int], tuple[float, float, float, float] | None] = {}

    def rates(self, model: str, provider: str, day: int) -> tuple[float, float, float, float] | None:
        key = (model, provider, day)
        if key not in self._rates:
            when = datetime.fromtimestamp(day * 86400 + 43200, UTC)
            try:
                def price(**usage: int) -> float:
                    return float(calc_price(Usage(**usage), model_ref=model, provider_id=provider,
                                            genai_request_timestamp=when).total_price) / 1000
                self._rates[key] = (price(input_tokens=1000),
                                    price(input_tokens=1000, cache_read_tokens=1000),
                                    price(input_tokens=1000, cache_write_tokens=1000),
                                    price(output_tokens=1000))
            except LookupError:
                self._rates[key] = None
        return self._rates[key]

    def cost(self, model: str, provider: str, start_ns: int, input_tokens: int, cached: int,
             writes: int, output_tokens: int) -> float | None:
        rate = self.rates(model, provider, start_ns // NS_PER_DAY)
        if rate is None:
            return None
        fresh = input_tokens - cached - writes
        return fresh * rate[0] + cached * rate[1] + writes * rate[2] + output_tokens * rate[3]


@dataclass
class Facts:
    """What the ground truth needs, gathered while generating (bounded: runs and a few steps)."""

    end_ns: int
    prices: PriceBook = field(default_factory=PriceBook)
    runs: dict[str, list[Any]] = field(default_factory=dict)
    steps: dict[str, list[Any]] = field(default_factory=dict)
    spans: int = 0

    def _put(self, table: dict[str, list[Any]], **columns: Any) -> None:
        for key, value in columns.items():
            table.setdefault(key, []).append(np.asarray(value))

    def add(self, runs: Runs, blocks: list[StepBlock], versions: list[str]) -> None:
        root = blocks[0]
        n = len(runs)
        cost = np.zeros(n)
        output = np.zeros(n, dtype=np.int64)
        llm_calls = np.zeros(n, dtype=np.int64)
        unpriced = np.zeros(n, dtype=np.int64)
        run_key = np.full(n, -1, dtype=np.int64)
        present = root.end_ns < self.end_ns
        offset = sum(len(k) for k in self.runs.get("start_ns", []))
        run_key[present] = offset + np.arange(int(present.sum()))
        for block in blocks:
            written = block.end_ns < self.end_ns
            self.spans += int(written.sum())
            if block.kind == "llm":
                llm_calls += np.bincount(block.run, minlength=n)
                ok = ~block.failed
                out = np.where(ok, block.data["output_tokens"], 0)
                output += np.bincount(block.run, weights=out, minlength=n).astype(np.int64)
            if block.kind in ("llm", "embedding"):
                self._price(block, cost, unpriced)
            key = (runs.workflow, block.step)
            if (block.kind == "tool" and block.step in KEPT_TOOLS) or key in KEPT_LLM_STEPS:
                d = block.data
                self._put(self.steps, workflow=[runs.workflow] * int(written.sum()),
                          step=[block.step] * int(written.sum()),
                          start_ns=block.start_ns[written], run=run_key[block.run[written]],
                          error_type=np.array(block.error_type, dtype=object)[written],
                          http=block.http_status[written],
                          request_model=np.array(d.get("request_model", [None] * len(block)),
                                                 dtype=object)[written],
                          response_model=np.array(d.get("response_model", [None] * len(block)),
                                                  dtype=object)[written],
                          output_tokens=np.asarray(d.get("output_tokens", np.zeros(len(block))))
                          [written])
        self._put(self.runs, workflow=[runs.workflow] * int(present.sum()),
                  start_ns=runs.start_ns[present],
                  latency_ms=((root.end_ns - root.start_ns) / 1e6)[present],
                  outcome=root.data["outcome"][present],
                  version=np.array(versions, dtype=object)[present],
                  cost=cost[present], output_tokens=output[present],
                  llm_calls=llm_calls[present], unpriced=unpriced[present])

    def _price(self, block: StepBlock, cost: np.ndarray, unpriced: np.ndarray) -> None:
        d = block.data
        for i in np.flatnonzero(~block.failed).tolist():
            value = self.prices.cost(d["response_model"][i], d["provider"][i],
                                     int(block.start_ns[i]), int(d["input_tokens"][i]),
                                     int(d["cached_tokens"][i]), int(d["cache_write_tokens"][i]),
                                     int(d["output_tokens"][i]))
            run = int(block.run[i])
            if value is None:
                unpriced[run] += 1
            else:
                cost[run] += value

    def table(self, which: str) -> dict[str, np.ndarray]:
        source = self.runs if which == "runs" else self.steps
        columns = RUN_COLUMNS if which == "runs" else STEP_COLUMNS
        return {k: np.concatenate(source[k]) if source.get(k) else np.array([]) for k in columns}


def _effect(metric: str, baseline: Any, current: Any, **extra: Any) -> dict[str, Any]:
    factor = None
    if isinstance(baseline, int | float) and isinstance(current, int | float) and baseline:
        factor = current / baseline
    return {"metric": metric, **extra, "baseline": baseline, "current": current, "factor": factor}


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _per(total: np.ndarray, count: np.ndarray) -> float | None:
    """Sum of `total` over the sum of `count` (a boolean mask counts its Trues)."""
    n = count.sum()
    return float(total.sum() / n) if n else None


def _window(runs: dict[str, np.ndarray], workflow: str, lo: int, hi: int) -> np.ndarray:
    return (runs["workflow"] == workflow) & (runs["start_ns"] >= lo) & (runs["start_ns"] < hi)


def _rate(mask: np.ndarray, of: np.ndarray) -> float | None:
    return float(mask[of].mean()) if of.any() else None


def compute(plan: IncidentPlan, facts: Facts, meta: dict[str, Any]) -> dict[str, Any]:
    runs, steps = facts.table("runs"), facts.table("steps")
    end = plan.end_ns
    out = []
    for incident in INCIDENTS:
        if incident.number not in plan.enabled:
            continue
        start = plan.start_ns(incident.number)
        stop = plan.end_of(incident.number)
        base = (max(start - BASELINE_NS, plan.data_start_ns or 0), start)
        cur = (start, stop if stop is not None else end)
        entry: dict[str, Any] = {
            "id": incident.id, "number": incident.number, "kind": incident.kind,
            "title": incident.title, "workflow": incident.workflow, "service": incident.service,
            "tool": incident.tool, "model": incident.model,
            "start": iso(start), "end": iso(stop),
            "baseline_window": {"start": iso(base[0]), "end": iso(base[1])},
            "current_window": {"start": iso(cur[0]), "end": iso(cur[1])},
        }
        entry.update(MEASURES[incident.number](runs, steps, base, cur, plan))
        out.append(entry)
    return {"schema_version": SCHEMA_VERSION, "data": meta, "incidents": out}


def _release(runs, steps, base, cur, plan) -> dict[str, Any]:
    b, c = _window(runs, "kb_answer", *base), _window(runs, "kb_answer", *cur)
    lat = runs["latency_ms"]
    return {
        "effect": _effect("latency_p95_ms", _pct(lat[b], 95), _pct(lat[c], 95)),
        "other_effects": [
            _effect("latency_p50_ms", _pct(lat[b], 50), _pct(lat[c], 50)),
            _effect("llm_calls_per_run", _mean(runs["llm_calls"][b]), _mean(runs["llm_calls"][c])),
            _effect("cost_per_run_usd", _mean(runs["cost"][b]), _mean(runs["cost"][c])),
        ],
        "details": {"service_version_before": company.SERVICES["helpcenter-bot"].version,
                    "service_version_after": sorted(set(runs["version"][c].tolist())),
                    "baseline_versions": sorted(set(runs["version"][b].tolist())),
                    "runs_baseline": int(b.sum()), "runs_current": int(c.sum())},
    }


def _tool_window(steps, tool: str, lo: int, hi: int) -> np.ndarray:
    return (steps["step"] == tool) & (steps["start_ns"] >= lo) & (steps["start_ns"] < hi)


def _failures(steps, where: np.ndarray) -> dict[str, Any]:
    starts = steps["start_ns"][where]
    runs_hit = steps["run"][where]
    return {"failed_steps": int(where.sum()),
            "runs_affected": len(set(runs_hit[runs_hit >= 0].tolist())),
            "first_seen": iso(int(starts.min())) if len(starts) else None,
            "last_seen": iso(int(starts.max())) if len(starts) else None,
            "first_seen_unix_nano": int(starts.min()) if len(starts) else None}


def _burst(runs, steps, base, cur, plan) -> dict[str, Any]:
    is429 = (steps["step"] == "issue_refund") & (steps["http"] == 429)
    b, c = _tool_window(steps, "issue_refund", *base), _tool_window(steps, "issue_refund", *cur)
    ok = steps["error_type"] == None  # noqa: E711 - element-wise on an object array
    rb, rc = _window(runs, "refund_request", *base), _window(runs, "refund_request", *cur)
    failed = runs["outcome"] == FAILED
    return {
        "effect": _effect("tool_success_rate", _rate(ok, b), _rate(ok, c), tool="issue_refund"),
        "other_effects": [
            _effect("failed_steps", int((is429 & b).sum()), int((is429 & c).sum()),
                    tool="issue_refund", http_status=429),
            _effect("failure_rate", _rate(failed, rb), _rate(failed, rc), workflow="refund_request"),
        ],
        "details": {"error_type": "RateLimitError", "http_status": 429,
                    "template": "Rate limit exceeded for tool issue_refund, retry after <NUM>s",
                    "tool_calls_in_window": int(c.sum()),
                    "failed_steps_total_in_data": int(is429.sum()),
                    **_failures(steps, is429 & c)},
    }


def _swap(runs, steps, base, cur, plan) -> dict[str, Any]:
    b, c = _window(runs, "support_triage", *base), _window(runs, "support_triage", *cur)
    done = runs["outcome"] == COMPLETED
    cost, out = runs["cost"], runs["output_tokens"]
    draft = (steps["workflow"] == "support_triage") & (steps["error_type"] == None)  # noqa: E711
    db = draft & (steps["start_ns"] >= base[0]) & (steps["start_ns"] < base[1])
    dc = draft & (steps["start_ns"] >= cur[0]) & (steps["start_ns"] < cur[1])
    lat = runs["latency_ms"]
    return {
        "effect": _effect("cost_per_completed_task_usd", _per(cost[b], done[b]),
                          _per(cost[c], done[c])),
        "other_effects": [
            _effect("output_tokens_per_completed_task", _per(out[b], done[b]),
                    _per(out[c], done[c])),
            _effect("output_tokens_per_call", _mean(steps["output_tokens"][db]),
                    _mean(steps["output_tokens"][dc]), step="draft_reply"),
            _effect("latency_p95_ms", _pct(lat[b], 95), _pct(lat[c], 95)),
        ],
        "details": {"model_before": TRIAGE_MODEL_BEFORE, "model_after": TRIAGE_MODEL_AFTER,
                    "models_baseline": sorted(set(steps["request_model"][db].tolist())),
                    "models_current": sorted(set(steps["request_model"][dc].tolist())),
                    "runs_baseline": int(b.sum()), "runs_current": int(c.sum()),
                    "completed_baseline": int(done[b].sum()),
                    "completed_current": int(done[c].sum())},
    }


def _new_error(runs, steps, base, cur, plan) -> dict[str, Any]:
    schema = steps["error_type"] == "SettingsSchemaError"
    b, c = _tool_window(steps, "update_settings", *base), _tool_window(steps, "update_settings",
                                                                       *cur)
    ok = steps["error_type"] == None  # noqa: E711
    rb, rc = _window(runs, "account_config", *base), _window(runs, "account_config", *cur)
    done = runs["outcome"] == COMPLETED
    return {
        "effect": _effect("failed_steps", int((schema & b).sum()), int((schema & c).sum()),
                          tool="update_settings", error_type="SettingsSchemaError"),
        "other_effects": [
            _effect("tool_success_rate", _rate(ok, b), _rate(ok, c), tool="update_settings"),
            _effect("completion_rate", _rate(done, rb), _rate(done, rc)),
        ],
        "details": {"error_type": "SettingsSchemaError", "http_status": 422,
                    "template": "Settings API rejected update for account <ID>: unknown field "
                                "<QUOTED> (schema <DATE>)",
                    "failed_steps_before_start": int((schema & (steps["start_ns"] < cur[0])).sum()),
                    **_failures(steps, schema & c)},
    }


def _creep(runs, steps, base, cur, plan) -> dict[str, Any]:
    wf = "refund_request"
    esc = runs["outcome"] == ESCALATED
    last_day = (plan.end_ns - NS_PER_DAY, plan.end_ns)
    b, c, week = _window(runs, wf, *base), _window(runs, wf, *last_day), _window(runs, wf, *cur)
    daily = []
    for lo in range(base[0], plan.end_ns, NS_PER_DAY):
        w = _window(runs, wf, lo, lo + NS_PER_DAY)
        daily.append({"day": iso(lo)[:10], "runs": int(w.sum()), "escalated": int((esc & w).sum()),
                      "escalation_rate": _rate(esc, w)})
    return {
        "effect": _effect("escalation_rate", _rate(esc, b), _rate(esc, c),
                          current_window={"start": iso(last_day[0]), "end": iso(last_day[1])}),
        "other_effects": [_effect("escalation_rate", _rate(esc, b), _rate(esc, week),
                                  current_window={"start": iso(cur[0]), "end": iso(cur[1])})],
        "details": {"daily": daily, "planned_decision_rate_start": ESCALATION_START_RATE,
                    "planned_decision_rate_end": ESCALATION_END_RATE},
    }


def _version(runs, steps, base, cur, plan) -> dict[str, Any]:
    gpt4o = (steps["request_model"] == "gpt-4o") & (steps["error_type"] == None)  # noqa: E711

    def share(lo: int, hi: int) -> tuple[dict[str, float], dict[str, int]]:
        w = gpt4o & (steps["start_ns"] >= lo) & (steps["start_ns"] < hi)
        names, counts = np.unique(steps["response_model"][w].astype(str), return_counts=True)
        total = max(int(counts.sum()), 1)
        return ({k: float(v / total) for k, v in zip(names.tolist(), counts.tolist(), strict=True)},
                {k: int(v) for k, v in zip(names.tolist(), counts.tolist(), strict=True)})

    (sb, nb), (sc, nc) = share(*base), share(*cur)
    new = gpt4o & (steps["response_model"] == "gpt-4o-2024-11-20")
    old = gpt4o & (steps["response_model"] == "gpt-4o-2024-08-06")
    return {
        "effect": _effect("response_model_share", sb, sc, request_model="gpt-4o"),
        "other_effects": [],
        "details": {"response_model_before": "gpt-4o-2024-08-06",
                    "response_model_after": "gpt-4o-2024-11-20",
                    "calls_baseline": nb, "calls_current": nc,
                    "new_version_first_seen": iso(int(steps["start_ns"][new].min()))
                    if new.any() else None,
                    "old_version_last_seen": iso(int(steps["start_ns"][old].max()))
                    if old.any() else None},
    }


def _unpriced(runs, steps, base, cur, plan) -> dict[str, Any]:
    custom = steps["request_model"] == "acme-chartwriter-v1"
    ok = custom & (steps["error_type"] == None)  # noqa: E711
    in_b = (steps["start_ns"] >= base[0]) & (steps["start_ns"] < base[1])
    in_c = (steps["start_ns"] >= cur[0]) & (steps["start_ns"] < cur[1])
    wr = (runs["workflow"] == "weekly_report") & (runs["start_ns"] >= cur[0])
    return {
        "effect": _effect("unpriced_llm_calls", int((ok & in_b).sum()), int((ok & in_c).sum()),
                          model="acme-chartwriter-v1"),
        "other_effects": [],
        "details": {"provider": "openai", "calls_including_failed": int(custom.sum()),
                    "runs_with_unpriced_calls": int((runs["unpriced"][wr] > 0).sum()),
                    **{k: v for k, v in _failures(steps, custom).items() if k != "failed_steps"}},
    }


MEASURES = {1: _release, 2: _burst, 3: _swap, 4: _new_error, 5: _creep, 6: _version,
            7: _unpriced}


def summary(runs: dict[str, np.ndarray], days: int) -> dict[str, Any]:
    """Per-workflow volume and outcome mix over the whole data (for the README)."""
    out = {}
    for wf in company.WORKFLOWS:
        w = runs["workflow"] == wf
        outcomes = runs["outcome"][w]
        out[wf] = {"runs": int(w.sum()), "runs_per_day": round(float(w.sum()) / days, 1),
                   **{f"{name}_share": round(float((outcomes == i).mean()), 4) if w.any() else None
                      for i, name in enumerate(OUTCOMES)}}
    return out
