"""The seven planted incidents: when they happen and what they change.

Incident instants are fixed offsets before the end of the data, so the bundled sample
(ending 2026-11-16T00:00Z, days 1-14 = 2026-11-02 .. 2026-11-15) places them on the days
the documentation names, and a longer or shifted run keeps them in its last two weeks.
`IncidentPlan` answers the simulation's questions ("which model does this run use?",
"what share of these calls hit the rate limit?") column-wise; everything not asked here
is stationary. The measured effects are computed from the generated data by
`ground_truth.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Incident:
    """One planted incident. `start_before_end` places it; `duration` is None while ongoing."""

    number: int
    id: str
    kind: str
    title: str
    workflow: str
    start_before_end: timedelta
    duration: timedelta | None = None
    service: str | None = None
    tool: str | None = None
    model: str | None = None


INCIDENTS: tuple[Incident, ...] = (
    Incident(1, "release-v2-latency", "release_latency_regression",
             "helpcenter-bot 2.0.0 adds a rerank and a verification model call to every "
             "kb_answer run; p95 run latency doubles",
             "kb_answer", timedelta(days=4, hours=14, minutes=30), service="helpcenter-bot",
             model="gpt-4.1-mini"),
    Incident(2, "issue-refund-429-burst", "tool_error_burst",
             "The payment provider rate-limits issue_refund for three hours (HTTP 429)",
             "refund_request", timedelta(days=3, hours=11), timedelta(hours=3),
             service="billing-agent", tool="issue_refund"),
    Incident(3, "triage-model-swap", "model_swap",
             "support_triage drafts replies with claude-sonnet-4-5 instead of gpt-4.1: longer "
             "answers, higher cost per completed task",
             "support_triage", timedelta(days=6, hours=14), service="support-agent",
             model="claude-sonnet-4-5-20250929"),
    Incident(4, "settings-schema-error", "new_error_type",
             "The settings API starts rejecting a field the assistant sends (HTTP 422): a new "
             "failure cluster",
             "account_config", timedelta(days=2, hours=17, minutes=20),
             service="account-assistant", tool="update_settings"),
    Incident(5, "refund-escalation-creep", "escalation_creep",
             "refund_request hands more and more requests to humans over the last week",
             "refund_request", timedelta(days=7), service="billing-agent"),
    Incident(6, "gpt-4o-silent-update", "response_model_change",
             "OpenAI starts answering gpt-4o requests with gpt-4o-2024-11-20 instead of "
             "gpt-4o-2024-08-06",
             "account_config", timedelta(days=5, hours=8, minutes=40),
             service="account-assistant", model="gpt-4o"),
    Incident(7, "unpriced-custom-model", "unpriced_model",
             "reporting-worker captions charts with the in-house acme-chartwriter-v1, which no "
             "price list knows",
             "weekly_report", timedelta(days=11, hours=13), service="reporting-worker",
             model="acme-chartwriter-v1"),
)

# What each incident changes (the levers the simulation reads).
RELEASE_V2_VERSION = "2.0.0"
TRIAGE_MODEL_BEFORE = "gpt-4.1"
TRIAGE_MODEL_AFTER = "claude-sonnet-4-5-20250929"
RATE_LIMIT_SHARE = 0.8          # of issue_refund attempts during the burst
SCHEMA_ERROR_SHARE = 0.15       # of update_settings calls from day 12 on
ESCALATION_START_RATE = 0.10    # refund_request's own escalation decision ...
ESCALATION_END_RATE = 0.35      # ... rising linearly to this at the end of the data
GPT4O_NEW_VERSION = "gpt-4o-2024-11-20"
CHART_MODEL_BEFORE = "claude-haiku-4-5-20251001"
CHART_MODEL_AFTER = "acme-chartwriter-v1"


class IncidentPlan:
    """The incidents switched on for one generation, resolved to nanosecond instants."""

    def __init__(self, end_ns: int, enabled: Iterable[int] | None = None,
                 data_start_ns: int | None = None):
        """Plan the `enabled` incidents (default all) for data ending at `end_ns`.

        An incident that would start before `data_start_ns` is left out (and listed in
        `skipped`): a history too short to hold it cannot show its before and after.
        """
        self.end_ns = end_ns
        self.data_start_ns = data_start_ns
        numbers = {i.number for i in INCIDENTS} if enabled is None else set(enabled)
        unknown = numbers - {i.number for i in INCIDENTS}
        if unknown:
            raise ValueError(f"no planted incident numbered {sorted(unknown)[0]} (1-7)")
        inside = {n for n in numbers
                  if data_start_ns is None or self.start_ns(n) >= data_start_ns}
        self.enabled = frozenset(inside)
        self.skipped = tuple(sorted(numbers - inside))

    def incident(self, number: int) -> Incident:
        return INCIDENTS[number - 1]

    def start_ns(self, number: int) -> int:
        return self.end_ns - int(self.incident(number).start_before_end.total_seconds()) * NS_PER_S

    def end_of(self, number: int) -> int | None:
        duration = self.incident(number).duration
        if duration is None:
            return None
        return self.start_ns(number) + int(duration.total_seconds()) * NS_PER_S

    def _after(self, number: int, t_ns: np.ndarray) -> np.ndarray:
        if number not in self.enabled:
            return np.zeros(len(t_ns), dtype=bool)
        after = t_ns >= self.start_ns(number)
        end = self.end_of(number)
        return after & (t_ns < end) if end is not None else after

    # -- levers, one per incident ---------------------------------------------------------

    def kb_release_v2(self, run_start_ns: np.ndarray) -> np.ndarray:
        """Runs served by helpcenter-bot 2.0.0 (deployed at the incident start)."""
        return self._after(1, run_start_ns)

    def refund_rate_limit_share(self, call_start_ns: np.ndarray) -> np.ndarray:
        return np.where(self._after(2, call_start_ns), RATE_LIMIT_SHARE, 0.0)

    def triage_draft_model(self, run_start_ns: np.ndarray) -> list[str]:
        swapped = self._after(3, run_start_ns)
        return [TRIAGE_MODEL_AFTER if s else TRIAGE_MODEL_BEFORE for s in swapped.tolist()]

    def settings_schema_share(self, call_start_ns: np.ndarray) -> np.ndarray:
        return np.where(self._after(4, call_start_ns), SCHEMA_ERROR_SHARE, 0.0)

    def refund_escalation_rate(self, run_start_ns: np.ndarray) -> np.ndarray:
        if 5 not in self.enabled:
            return np.full(len(run_start_ns), ESCALATION_START_RATE)
        start = self.start_ns(5)
        progress = np.clip((run_start_ns - start) / (self.end_ns - start), 0.0, 1.0)
        return ESCALATION_START_RATE + (ESCALATION_END_RATE - ESCALATION_START_RATE) * progress

    def response_model(self, request_model: str, default: str, call_start_ns: np.ndarray
                       ) -> list[str]:
        if request_model != "gpt-4o":
            return [default] * len(call_start_ns)
        updated = self._after(6, call_start_ns)
        return [GPT4O_NEW_VERSION if u else default for u in updated.tolist()]

    def chart_model(self, run_start_ns: np.ndarray) -> list[str]:
        custom = self._after(7, run_start_ns)
        return [CHART_MODEL_AFTER if c else CHART_MODEL_BEFORE for c in custom.tolist()]


def service_version(service: str, default: str, plan: IncidentPlan, run_start_ns: np.ndarray
                    ) -> list[str]:
    """The version of `service` that served each run (only helpcenter-bot is released)."""
    if service != "helpcenter-bot":
        return [default] * len(run_start_ns)
    v2 = plan.kb_release_v2(run_start_ns)
    return [RELEASE_V2_VERSION if v else default for v in v2.tolist()]
