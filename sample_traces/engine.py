"""The simulation machinery: when runs start, and the steps they make, column-wise.

A workflow is simulated for all of one day's runs at once. `TraceBuilder` keeps one
clock per run; each step call (`llm`, `tool`, ...) takes a mask of the runs that make
the step, draws all their durations, tokens and failures with numpy in one go,
advances their clocks and records a `StepBlock` (one row per span). Retries are loops
over masks, never over runs. The result is deterministic given the numpy Generator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import company, content
from .incidents import IncidentPlan

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

OUTCOMES = ("completed", "escalated", "failed")
COMPLETED, ESCALATED, FAILED = 0, 1, 2

#: Model-call failures per provider: (kind, rate, error type, HTTP status, fixed duration).
LLM_ERRORS: dict[str, tuple[tuple[str, float, str, int | None, float | None], ...]] = {
    "openai": (("openai_server_error", 0.004, "InternalServerError", 500, None),
               ("openai_timeout", 0.002, "APITimeoutError", None, 60000.0)),
    "anthropic": (("anthropic_overloaded", 0.005, "OverloadedError", 529, None),),
}


#: (failure kind index or -1, error types, messages, HTTP statuses), one entry per call.
ErrorDraw = tuple[np.ndarray, list[str | None], list[str | None], np.ndarray]


@dataclass
class Runs:
    """One workflow's runs that start on one day (columns aligned by run)."""

    workflow: str
    start_ns: np.ndarray
    tenant: np.ndarray
    user_id: list[str]
    session_id: list[str]
    trace_id: list[bytes]
    root_span_id: list[bytes]
    scheduled: np.ndarray

    def __len__(self) -> int:
        return len(self.start_ns)


@dataclass
class StepBlock:
    """Spans of one kind of step for a subset of runs; `data` holds kind-specific columns."""

    kind: str                 # root | llm | embedding | tool | guardrail
    step: str                 # the step's logical name, e.g. "classify", "kb_search"
    run: np.ndarray           # indices into Runs
    start_ns: np.ndarray
    end_ns: np.ndarray
    span_id: list[bytes]
    error_type: list[str | None]
    error_message: list[str | None]
    http_status: np.ndarray   # 0 where none
    data: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.run)

    @property
    def failed(self) -> np.ndarray:
        return np.array([e is not None for e in self.error_type], dtype=bool)


def lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def token_counts(rng: np.random.Generator, median: float, sigma: float, n: int,
                 low: int = 1) -> np.ndarray:
    return np.maximum(np.rint(lognormal(rng, median, sigma, n)), low).astype(np.int64)


def random_ids(rng: np.random.Generator, n: int, width: int) -> list[bytes]:
    """`n` random non-zero ids of `width` bytes, as the SDK's random id generator makes."""
    raw = rng.bytes(n * width)
    ids = [raw[i * width:(i + 1) * width] for i in range(n)]
    return [i if any(i) else b"\x01" + i[1:] for i in ids]


def tenant_weights() -> np.ndarray:
    ranks = np.arange(1, len(company.TENANTS) + 1, dtype=float)
    weights = ranks ** -company.TENANT_ZIPF_EXPONENT
    return weights / weights.sum()


def users_per_tenant() -> np.ndarray:
    share = tenant_weights()
    return np.maximum(company.MIN_USERS_PER_TENANT,
                      np.rint(share * company.USERS_PER_UNIT_SHARE)).astype(np.int64)


def user_id(tenant: int, index: int) -> str:
    digest = hashlib.blake2b(f"{company.TENANTS[tenant]}/{index}".encode(), digest_size=5)
    return f"usr_{digest.hexdigest()}"


def session_starts(rng: np.random.Generator, day_start_ns: int, rate_per_day: float) -> np.ndarray:
    """Session start times over one UTC day: Poisson counts per hour, uniform within it."""
    weekday = int((day_start_ns // NS_PER_DAY + 3) % 7)   # 1970-01-01 was a Thursday
    hourly = np.asarray(company.HOURLY_PROFILE)
    expected = rate_per_day * company.WEEKDAY_PROFILE[weekday] * hourly / hourly.sum()
    counts = rng.poisson(expected)
    hours = np.repeat(np.arange(24, dtype=np.int64), counts)
    offsets = (rng.random(len(hours)) * 3600 * NS_PER_S).astype(np.int64)
    return np.sort(day_start_ns + hours * 3600 * NS_PER_S + offsets)


def make_runs(rng: np.random.Generator, workflow: company.Workflow, day_start_ns: int,
              scale: float) -> Runs:
    """Sessions, their runs, tenants and users for one workflow and one day."""
    starts = session_starts(rng, day_start_ns, workflow.sessions_per_day * scale)
    n_sessions = len(starts)
    per_session = rng.geometric(1.0 / workflow.runs_per_session, n_sessions)
    tenant = rng.choice(len(company.TENANTS), size=n_sessions, p=tenant_weights())
    user_index = (rng.random(n_sessions) * users_per_tenant()[tenant]).astype(np.int64)
    session_hex = [s.hex() for s in random_ids(rng, n_sessions, 8)]

    session_of_run = np.repeat(np.arange(n_sessions), per_session)
    position = np.arange(len(session_of_run)) - np.repeat(np.cumsum(per_session) - per_session,
                                                          per_session)
    gaps = (lognormal(rng, 150.0, 0.6, len(session_of_run)) * NS_PER_S).astype(np.int64)
    gaps[position == 0] = 0
    cum = np.cumsum(gaps)
    session_base = np.repeat(cum[np.cumsum(per_session) - per_session], per_session)
    run_start = starts[session_of_run] + (cum - session_base)
    run_tenant = tenant[session_of_run]
    users = [user_id(t, u) for t, u in zip(tenant.tolist(), user_index.tolist(), strict=True)]
    run_users = [users[s] for s in session_of_run.tolist()]
    run_sessions = [f"sess_{session_hex[s]}" for s in session_of_run.tolist()]
    scheduled = np.zeros(len(run_start), dtype=bool)

    weekday = int((day_start_ns // NS_PER_DAY + 3) % 7)
    if workflow.scheduled_per_tenant and weekday == 0:
        n_per_tenant = rng.poisson(workflow.scheduled_per_tenant * scale, len(company.TENANTS))
        batch_tenant = np.repeat(np.arange(len(company.TENANTS)), n_per_tenant)
        lo, hi = company.WEEKLY_BATCH_HOURS
        offsets = ((lo + rng.random(len(batch_tenant)) * (hi - lo)) * 3600 * NS_PER_S)
        run_start = np.concatenate([run_start, day_start_ns + offsets.astype(np.int64)])
        run_tenant = np.concatenate([run_tenant, batch_tenant])
        batch_sessions = random_ids(rng, len(batch_tenant), 8)
        run_users += ["svc_report_scheduler"] * len(batch_tenant)
        run_sessions += [f"sess_{s.hex()}" for s in batch_sessions]
        scheduled = np.concatenate([scheduled, np.ones(len(batch_tenant), dtype=bool)])

    order = np.argsort(run_start, kind="stable")
    n = len(order)
    return Runs(
        workflow=workflow.name,
        start_ns=run_start[order],
        tenant=run_tenant[order],
        user_id=[run_users[i] for i in order.tolist()],
        session_id=[run_sessions[i] for i in order.tolist()],
        trace_id=random_ids(rng, n, 16),
        root_span_id=random_ids(rng, n, 8),
        scheduled=scheduled[order],
    )


class TraceBuilder:
    """Advances every run's clock step by step and records the spans, column-wise."""

    def __init__(self, runs: Runs, rng: np.random.Generator, plan: IncidentPlan):
        self.runs = runs
        self.rng = rng
        self.plan = plan
        self.clock = runs.start_ns + (lognormal(rng, 15.0, 0.5, len(runs)) * NS_PER_MS).astype(
            np.int64)
        self.fatal = np.zeros(len(runs), dtype=bool)
        self.blocks: list[StepBlock] = []

    @property
    def alive(self) -> np.ndarray:
        return ~self.fatal

    def _advance(self, idx: np.ndarray, duration_ms: np.ndarray, gap_ms: float = 25.0
                 ) -> tuple[np.ndarray, np.ndarray]:
        gap = (lognormal(self.rng, gap_ms, 0.5, len(idx)) * NS_PER_MS).astype(np.int64)
        start = self.clock[idx] + gap
        end = start + np.maximum(np.rint(duration_ms * NS_PER_MS), NS_PER_MS // 10).astype(np.int64)
        self.clock[idx] = end
        return start, end

    def wait(self, mask: np.ndarray, seconds: np.ndarray) -> None:
        """Runs in `mask` pause (back-off before a retry)."""
        self.clock[mask] += (seconds * NS_PER_S).astype(np.int64)

    def _block(self, kind: str, step: str, idx: np.ndarray, start: np.ndarray, end: np.ndarray,
               errors: tuple[list[str | None], list[str | None], np.ndarray],
               data: dict[str, Any]) -> StepBlock:
        block = StepBlock(kind, step, idx, start, end, random_ids(self.rng, len(idx), 8),
                          errors[0], errors[1], errors[2], data)
        self.blocks.append(block)
        return block

    def _draw_errors(self, n: int, kinds: list[tuple[str, Any, str, int | None]],
                     tool: str | None, subjects: list[str] | None = None) -> ErrorDraw:
        """Pick at most one failure per call; returns (kind index or -1, types, messages, http)."""
        chosen = np.full(n, -1, dtype=np.int64)
        u = self.rng.random(n)
        low = np.zeros(n)
        for k, (_, rate, _, _) in enumerate(kinds):
            high = low + np.broadcast_to(np.asarray(rate, dtype=float), (n,))
            chosen[(u >= low) & (u < high) & (chosen < 0)] = k
            low = high
        types: list[str | None] = [None] * n
        messages: list[str | None] = [None] * n
        http = np.zeros(n, dtype=np.int64)
        for k, (kind, _, error_type, status) in enumerate(kinds):
            where = np.flatnonzero(chosen == k)
            if not len(where):
                continue
            about = None if subjects is None else [subjects[i] for i in where.tolist()]
            texts = content.error_messages(kind, tool, self.rng, len(where), about)
            for i, text in zip(where.tolist(), texts, strict=True):
                types[i], messages[i] = error_type, text
            http[where] = status or 0
        return chosen, types, messages, http

    def llm(self, step: str, mask: np.ndarray, model: str | list[str], input_tokens: np.ndarray,
            output_tokens: np.ndarray, cached_tokens: np.ndarray, prompt: list[str],
            completion: list[str], finish: list[str] | str = "stop",
            cache_write_tokens: np.ndarray | None = None, kind: str = "llm",
            max_attempts: int = 2) -> np.ndarray:
        """One model call per run in `mask`, retried once on failure; returns runs that succeeded.

        Array arguments are aligned with `np.flatnonzero(mask)`.
        """
        idx = np.flatnonzero(mask)
        n = len(idx)
        models = [model] * n if isinstance(model, str) else list(model)
        finishes = [finish] * n if isinstance(finish, str) else list(finish)
        writes = cache_write_tokens if cache_write_tokens is not None else np.zeros(n, np.int64)
        pending = np.arange(n)
        ok = np.zeros(len(self.runs), dtype=bool)
        ok[~mask] = True
        for attempt in range(max_attempts):
            sub = idx[pending]
            spec = [company.MODELS[models[i]] for i in pending.tolist()]
            ttft = np.array([m.ttft_ms for m in spec]) * np.exp(0.35 * self.rng.standard_normal(
                len(sub)))
            per_token = np.array([m.ms_per_token for m in spec]) * np.exp(
                0.15 * self.rng.standard_normal(len(sub)))
            duration = ttft + output_tokens[pending] * per_token
            providers = [m.provider for m in spec]
            failed = np.zeros(len(sub), dtype=bool)
            types: list[str | None] = [None] * len(sub)
            messages: list[str | None] = [None] * len(sub)
            http = np.zeros(len(sub), dtype=np.int64)
            for provider in ("openai", "anthropic"):
                where = np.flatnonzero(np.array([p == provider for p in providers], dtype=bool))
                if not len(where):
                    continue
                kinds = [(k, r, t, h) for k, r, t, h, _ in LLM_ERRORS[provider]]
                chosen, t_, m_, h_ = self._draw_errors(len(where), kinds, None)
                for j, w in enumerate(where.tolist()):
                    if chosen[j] >= 0:
                        failed[w] = True
                        types[w], messages[w], http[w] = t_[j], m_[j], h_[j]
                        fixed = LLM_ERRORS[provider][chosen[j]][4]
                        duration[w] = fixed if fixed else ttft[w] * 0.8
            start, end = self._advance(sub, duration)
            keep = ~failed
            self._block(kind, step, sub, start, end, (types, messages, http), {
                "request_model": [models[i] for i in pending.tolist()],
                "response_model": self._response_models([models[i] for i in pending.tolist()],
                                                        start),
                "provider": providers,
                "input_tokens": np.where(keep, input_tokens[pending], -1),
                "output_tokens": np.where(keep, output_tokens[pending], -1),
                "cached_tokens": np.where(keep, cached_tokens[pending], -1),
                "cache_write_tokens": np.where(keep, writes[pending], -1),
                "finish_reason": [finishes[i] if k else None
                                  for i, k in zip(pending.tolist(), keep.tolist(), strict=True)],
                "prompt": [prompt[i] for i in pending.tolist()],
                "completion": [completion[i] if k else None
                               for i, k in zip(pending.tolist(), keep.tolist(), strict=True)],
                "attempt": attempt + 1,
            })
            ok[sub[keep]] = True
            pending = pending[failed]
            if not len(pending):
                break
            self.wait(np.isin(np.arange(len(self.runs)), idx[pending]),
                      lognormal(self.rng, 1.0, 0.3, len(pending)))
        return ok

    def _response_models(self, models: list[str], start: np.ndarray) -> list[str]:
        out = [company.MODELS[m].response_name for m in models]
        for i in np.flatnonzero(np.array([m == "gpt-4o" for m in models], dtype=bool)).tolist():
            out[i] = self.plan.response_model("gpt-4o", out[i], start[i:i + 1])[0]
        return out

    def tool(self, name: str, mask: np.ndarray, arguments: list[str], results: list[str],
             extra_errors: Sequence[tuple[str, Any, str, int | None, bool]] = (),
             max_attempts: int = 2, subjects: list[str] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """One tool call per run in `mask`, retrying retryable failures.

        `extra_errors` adds failure modes (planted incidents) as (kind, rate, error type,
        HTTP status, retryable); a rate may be a callable of the call start times.
        `subjects` (aligned like `arguments`) are the ids error messages should name.
        Returns (runs that succeeded, runs whose last failure was not retryable).
        """
        spec = company.TOOLS[name]
        idx = np.flatnonzero(mask)
        pending = np.arange(len(idx))
        ok = np.zeros(len(self.runs), dtype=bool)
        ok[~mask] = True
        hard = np.zeros(len(self.runs), dtype=bool)
        for attempt in range(max_attempts):
            sub = idx[pending]
            n = len(sub)
            duration = lognormal(self.rng, spec.median_ms, spec.sigma, n)
            planned_start = self.clock[sub]
            kinds = [(e.kind, e.rate, e.error_type, e.http_status) for e in spec.errors]
            retryable = [e.retryable for e in spec.errors]
            fixed = [e.duration_ms for e in spec.errors]
            for kind, rate, error_type, status, can_retry in extra_errors:
                rate_now = rate(planned_start) if callable(rate) else rate
                kinds.append((kind, rate_now, error_type, status))
                retryable.append(can_retry)
                fixed.append(None)
            about = None if subjects is None else [subjects[i] for i in pending.tolist()]
            chosen, types, messages, http = self._draw_errors(n, kinds, name, about)
            for k, ms in enumerate(fixed):
                if ms is not None:
                    duration[chosen == k] = ms
            quick = chosen >= len(spec.errors)
            duration[quick] *= 0.3
            start, end = self._advance(sub, duration)
            self._block("tool", name, sub, start, end, (types, messages, http), {
                "tool": name,
                "arguments": [arguments[i] for i in pending.tolist()],
                "result": [results[i] if c < 0 else None
                           for i, c in zip(pending.tolist(), chosen.tolist(), strict=True)],
                "attempt": attempt + 1,
            })
            succeeded = chosen < 0
            ok[sub[succeeded]] = True
            can_retry = np.array([c >= 0 and retryable[c] for c in chosen.tolist()], dtype=bool)
            hard[sub[(chosen >= 0) & ~can_retry]] = True
            pending = pending[can_retry]
            if not len(pending) or attempt == max_attempts - 1:
                break
            back = np.isin(np.arange(len(self.runs)), idx[pending])
            self.wait(back, lognormal(self.rng, 2.0, 0.4, len(pending)))
        return ok, hard

    def simple(self, kind: str, step: str, mask: np.ndarray, median_ms: float, sigma: float,
               data: dict[str, Any]) -> StepBlock:
        """A step that never fails (guardrails, retrieval bookkeeping)."""
        idx = np.flatnonzero(mask)
        start, end = self._advance(idx, lognormal(self.rng, median_ms, sigma, len(idx)))
        none: list[str | None] = [None] * len(idx)
        return self._block(kind, step, idx, start, end, (none, list(none),
                                                          np.zeros(len(idx), np.int64)), data)

    def finish(self, outcome: np.ndarray, data: dict[str, Any]) -> StepBlock:
        """The root span of every run, from its start to just after its last step."""
        n = len(self.runs)
        idx = np.arange(n)
        end = self.clock + (lognormal(self.rng, 12.0, 0.5, n) * NS_PER_MS).astype(np.int64)
        none: list[str | None] = [None] * n
        block = StepBlock("root", self.runs.workflow, idx, self.runs.start_ns.copy(), end,
                          list(self.runs.root_span_id), none, list(none),
                          np.zeros(n, np.int64), {**data, "outcome": outcome})
        self.blocks.insert(0, block)
        return block
