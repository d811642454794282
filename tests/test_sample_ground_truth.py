"""ground_truth.json of the bundled sample says what the raw spans really contain.

Every planted effect is recomputed here from the OTLP files, decoded with
opentelemetry-proto directly and priced with genai-prices directly — independently of
both the generator's own bookkeeping and stepscope's ingest and analytics.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pytest
from genai_prices import Usage, calc_price
from otlp_sample_reader import Span, read_dir

from stepscope.sample_traces import bundled_sample_dir

NS = 1_000_000_000
DAY = 86400 * NS
WORKFLOW_KEYS = ("gen_ai.workflow.name", "gen_ai.agent.name", "traceloop.workflow.name",
                 "agent.name")


def first(attrs: dict, *keys: str, default=None):
    return next((attrs[k] for k in keys if k in attrs), default)


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * NS


@dataclass
class Run:
    workflow: str
    outcome: str
    start: int
    latency_ms: float
    version: str
    steps: list[Span]


@dataclass
class Sample:
    truth: dict
    runs: list[Run]
    spans: list[Span]

    def incident(self, number: int) -> dict:
        return next(i for i in self.truth["incidents"] if i["number"] == number)

    def runs_in(self, workflow: str, lo: int, hi: int) -> list[Run]:
        return [r for r in self.runs if r.workflow == workflow and lo <= r.start < hi]


@pytest.fixture(scope="module")
def sample() -> Sample:
    directory = bundled_sample_dir()
    spans = read_dir(directory)
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    runs = []
    for trace in by_trace.values():
        roots = [s for s in trace if s.parent_span_id is None]
        if not roots:
            continue   # still running at the end of the data
        (root,) = roots
        runs.append(Run(first(root.attributes, *WORKFLOW_KEYS), root.attributes["task.outcome"],
                        root.start_ns, (root.end_ns - root.start_ns) / 1e6,
                        root.resource["service.version"],
                        [s for s in trace if s is not root]))
    truth = json.loads((directory / "ground_truth.json").read_text())
    return Sample(truth, runs, spans)


def windows(incident: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    b, c = incident["baseline_window"], incident["current_window"]
    return (ns(b["start"]), ns(b["end"])), (ns(c["start"]), ns(c["end"]))


def is_chat(s: Span) -> bool:
    a = s.attributes
    return (a.get("gen_ai.operation.name") == "chat" or a.get("llm.request.type") == "chat"
            or a.get("openinference.span.kind") == "LLM")


def tool_of(s: Span) -> str | None:
    a = s.attributes
    if a.get("traceloop.span.kind") == "tool":
        return a["traceloop.entity.name"]
    return first(a, "gen_ai.tool.name", "tool.name")


def error_type(s: Span) -> str | None:
    events = [e for e in s.events if e[0] == "exception"]
    return s.attributes.get("error.type") or (events[0][2]["exception.type"] if events else None)


def output_tokens(s: Span) -> int:
    return first(s.attributes, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                 "llm.token_count.completion", default=0)


@cache
def price(model: str, provider: str, start_ns: int, tokens: tuple[int, int, int, int]) -> float:
    inp, cached, written, out = tokens
    when = datetime.fromtimestamp(start_ns // NS, UTC)
    return float(calc_price(Usage(input_tokens=inp, cache_read_tokens=cached,
                                  cache_write_tokens=written, output_tokens=out),
                            model_ref=model, provider_id=provider,
                            genai_request_timestamp=when).total_price)


def cost(s: Span) -> float:
    a = s.attributes
    inp = first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt")
    if inp is None:
        return 0.0   # a failed call reports no usage
    tokens = (inp, first(a, "gen_ai.usage.cache_read.input_tokens",
                         "gen_ai.usage.cache_read_input_tokens",
                         "llm.token_count.prompt_details.cache_read", default=0),
              a.get("gen_ai.usage.cache_creation.input_tokens", 0), output_tokens(s))
    return price(first(a, "gen_ai.response.model", "llm.model_name"),
                 first(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider"),
                 s.start_ns, tokens)


def test_data_spans_the_fourteen_documented_days(sample: Sample) -> None:
    data = sample.truth["data"]
    assert (data["start"], data["end"]) == ("2026-11-02T00:00:00Z", "2026-11-16T00:00:00Z")
    assert data["spans"] == len(sample.spans)
    assert data["runs"] == len(sample.runs)
    assert 300 <= len(sample.runs) / 14 <= 600
    assert [i["number"] for i in sample.truth["incidents"]] == [1, 2, 3, 4, 5, 6, 7]


def test_release_v2_doubles_p95_latency_from_day_10(sample: Sample) -> None:
    inc = sample.incident(1)
    assert (inc["start"], inc["end"]) == ("2026-11-11T09:30:00Z", None)   # day 10
    base, cur = windows(inc)
    before, after = sample.runs_in("kb_answer", *base), sample.runs_in("kb_answer", *cur)
    assert {r.version for r in before} == {"1.9.4"} and {r.version for r in after} == {"2.0.0"}
    p95_b = float(np.percentile([r.latency_ms for r in before], 95))
    p95_c = float(np.percentile([r.latency_ms for r in after], 95))
    effect = inc["effect"]
    assert effect["metric"] == "latency_p95_ms"
    assert (effect["baseline"], effect["current"]) == pytest.approx((p95_b, p95_c), rel=1e-12)
    assert effect["factor"] == pytest.approx(p95_c / p95_b, rel=1e-12)
    assert 1.8 <= effect["factor"] <= 2.3
    calls = [sum(is_chat(s) for s in r.steps) for r in after]
    assert inc["other_effects"][1]["current"] == pytest.approx(np.mean(calls), rel=1e-12)


def test_429_burst_count_and_window(sample: Sample) -> None:
    inc = sample.incident(2)
    start, end = ns(inc["start"]), ns(inc["end"])
    assert end - start == 3 * 3600 * NS
    failed = [s for s in sample.spans if tool_of(s) == "issue_refund"
              and s.attributes.get("http.response.status_code") == 429]
    assert all(start <= s.start_ns < end for s in failed)   # nothing outside the burst
    assert all(error_type(s) == "RateLimitError" and s.status_code == 2 for s in failed)
    details = inc["details"]
    assert details["failed_steps"] == len(failed) == details["failed_steps_total_in_data"] >= 30
    assert details["runs_affected"] == len({s.trace_id for s in failed})
    assert details["first_seen_unix_nano"] == min(s.start_ns for s in failed)
    calls = [s for s in sample.spans if tool_of(s) == "issue_refund" and start <= s.start_ns < end]
    ok = sum(s.status_code != 2 for s in calls) / len(calls)
    assert inc["effect"]["current"] == pytest.approx(ok, rel=1e-12)
    assert inc["effect"]["baseline"] > 0.9 > 0.5 > ok


def test_model_swap_raises_cost_and_output_tokens_per_completed_task(sample: Sample) -> None:
    inc = sample.incident(3)
    base, cur = windows(inc)
    measured = {}
    for name, window in (("baseline", base), ("current", cur)):
        runs = sample.runs_in("support_triage", *window)
        completed = sum(r.outcome == "completed" for r in runs)
        llm = [s for r in runs for s in r.steps if is_chat(s)]
        measured[name] = (sum(cost(s) for s in llm) / completed,
                          sum(output_tokens(s) for s in llm) / completed,
                          {s.attributes["gen_ai.request.model"] for s in llm})
    effect, tokens = inc["effect"], inc["other_effects"][0]
    assert effect["metric"] == "cost_per_completed_task_usd"
    assert effect["baseline"] == pytest.approx(measured["baseline"][0], rel=1e-9)
    assert effect["current"] == pytest.approx(measured["current"][0], rel=1e-9)
    assert effect["factor"] == pytest.approx(measured["current"][0] / measured["baseline"][0],
                                             rel=1e-9)
    assert tokens["metric"] == "output_tokens_per_completed_task"
    assert (tokens["baseline"], tokens["current"]) == pytest.approx(
        (measured["baseline"][1], measured["current"][1]), rel=1e-12)
    assert effect["factor"] > 1.5 and tokens["factor"] > 1.3
    assert "gpt-4.1" in measured["baseline"][2] and "gpt-4.1" not in measured["current"][2]
    assert "claude-sonnet-4-5-20250929" in measured["current"][2]


def test_new_error_type_first_appears_on_day_12(sample: Sample) -> None:
    inc = sample.incident(4)
    assert inc["start"] == "2026-11-13T06:40:00Z"   # day 12
    new = [s for s in sample.spans if error_type(s) == "SettingsSchemaError"]
    assert min(s.start_ns for s in new) >= ns(inc["start"])
    assert inc["effect"]["current"] == inc["details"]["failed_steps"] == len(new) >= 15
    assert inc["effect"]["baseline"] == 0
    assert inc["details"]["first_seen_unix_nano"] == min(s.start_ns for s in new)
    assert inc["details"]["first_seen"].startswith("2026-11-13")
    assert {s.attributes["http.response.status_code"] for s in new} == {422}
    assert {tool_of(s) for s in new} == {"update_settings"}


def test_escalation_creeps_up_over_the_last_week(sample: Sample) -> None:
    inc = sample.incident(5)
    base, _ = windows(inc)
    last_day = (ns(sample.truth["data"]["end"]) - DAY, ns(sample.truth["data"]["end"]))

    def rate(window: tuple[int, int]) -> float:
        runs = sample.runs_in("refund_request", *window)
        return sum(r.outcome == "escalated" for r in runs) / len(runs)

    effect = inc["effect"]
    assert effect["current_window"]["start"] == "2026-11-15T00:00:00Z"
    assert (effect["baseline"], effect["current"]) == pytest.approx(
        (rate(base), rate(last_day)), rel=1e-12)
    assert effect["factor"] > 2.0
    daily = inc["details"]["daily"]
    assert len(daily) == 14
    week1 = np.mean([d["escalation_rate"] for d in daily[:7]])
    week2_late = np.mean([d["escalation_rate"] for d in daily[-4:]])
    assert week2_late > 1.6 * week1


def test_provider_silently_updates_the_responded_model(sample: Sample) -> None:
    inc = sample.incident(6)
    start = ns(inc["start"])
    answered = [(s.start_ns, s.attributes["gen_ai.response.model"]) for s in sample.spans
                if s.attributes.get("gen_ai.request.model") == "gpt-4o"
                and "gen_ai.response.model" in s.attributes]
    assert {m for t, m in answered if t < start} == {"gpt-4o-2024-08-06"}
    assert {m for t, m in answered if t >= start} == {"gpt-4o-2024-11-20"}
    base, _ = windows(inc)
    n_base = sum(base[0] <= t < base[1] for t, _ in answered)
    assert inc["details"]["calls_baseline"] == {"gpt-4o-2024-08-06": n_base}
    assert inc["effect"]["current"] == {"gpt-4o-2024-11-20": 1.0}
    # nothing else about the calls changed: same service version throughout
    assert {s.resource["service.version"] for s in sample.spans
            if s.resource["service.name"] == "account-assistant"} == {"1.12.0"}


def test_custom_model_has_no_price_and_is_counted(sample: Sample) -> None:
    inc = sample.incident(7)
    calls = [s for s in sample.spans if s.attributes.get("gen_ai.request.model")
             == "acme-chartwriter-v1"]
    answered = [s for s in calls if "gen_ai.usage.input_tokens" in s.attributes]
    assert inc["effect"]["current"] == len(answered) > 100
    assert min(s.start_ns for s in calls) >= ns(inc["start"])
    assert inc["details"]["first_seen_unix_nano"] == min(s.start_ns for s in calls)
    with pytest.raises(LookupError):
        cost(answered[0])


def test_quiet_workflows_keep_their_latency(sample: Sample) -> None:
    """account_config's latency is untouched by its incidents; both weeks agree closely."""
    end = ns(sample.truth["data"]["end"])
    weeks = [[r.latency_ms for r in sample.runs_in("account_config", lo, lo + 7 * DAY)
              if r.outcome == "completed"] for lo in (end - 14 * DAY, end - 7 * DAY)]
    p50 = [float(np.percentile(w, 50)) for w in weeks]
    assert p50[1] == pytest.approx(p50[0], rel=0.1)
