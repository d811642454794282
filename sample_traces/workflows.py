"""The five workflows' trace shapes: which steps a run makes and how it ends.

Each builder simulates all of one day's runs of its workflow at once with a
`TraceBuilder` and returns the root span's block first. Outcomes follow what happened:
a step that failed for good fails the run; the agent's own decision escalates it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from . import company, content
from .engine import COMPLETED, ESCALATED, FAILED, Runs, StepBlock, TraceBuilder, token_counts
from .incidents import IncidentPlan

MAX_OUTPUT_TOKENS = 1024
LENGTH_FINISH_SHARE = 0.008


def _cached(rng: np.random.Generator, input_tokens: np.ndarray, hit_share: float,
            anthropic_prefix: int | None = None) -> np.ndarray:
    """Cache-read tokens: OpenAI caches in 128-token steps from 1024; Anthropic a fixed prefix."""
    hit = rng.random(len(input_tokens)) < hit_share
    if anthropic_prefix is not None:
        return np.where(hit & (input_tokens > anthropic_prefix), anthropic_prefix, 0).astype(np.int64)
    steps = (input_tokens * 0.8 // 128 * 128).astype(np.int64)
    return np.where(hit & (steps >= 1024), steps, 0).astype(np.int64)


def _truncate(rng: np.random.Generator, output_tokens: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A small, constant share of answers hits max_tokens and finishes with `length`."""
    cut = rng.random(len(output_tokens)) < LENGTH_FINISH_SHARE
    tokens = np.where(cut, MAX_OUTPUT_TOKENS, np.minimum(output_tokens, MAX_OUTPUT_TOKENS - 1))
    return tokens, ["length" if c else "stop" for c in cut.tolist()]


def _outcome(rng: np.random.Generator, b: TraceBuilder, escalate: np.ndarray,
             failure_rate: float) -> np.ndarray:
    n = len(b.runs)
    gave_up = rng.random(n) < failure_rate
    outcome = np.full(n, COMPLETED, dtype=np.int64)
    outcome[escalate] = ESCALATED
    outcome[b.fatal | gave_up] = FAILED
    return outcome


def _args(**kw: object) -> str:
    return json.dumps(kw, separators=(",", ":"))


def support_triage(runs: Runs, rng: np.random.Generator, plan: IncidentPlan) -> list[StepBlock]:
    wf = company.WORKFLOWS["support_triage"]
    n = len(runs)
    b = TraceBuilder(runs, rng, plan)
    names, emails, phones = content.customer_contacts(rng, n)
    subject = content.pick(rng, content.TICKET_SUBJECTS, n)
    message = content.ticket_messages(subject, names, emails, phones, rng.random(n) < 0.3)
    urgent = rng.random(n) < 0.2
    ticket = rng.integers(100000, 999999, n)
    everyone = np.ones(n, dtype=bool)

    tokens_in = token_counts(rng, 1650, 0.25, n)
    ok = b.llm("classify", everyone, "gpt-4o-mini", tokens_in, token_counts(rng, 24, 0.2, n),
               _cached(rng, tokens_in, 0.6), message,
               content.classification_replies(subject, urgent))
    b.fatal |= ~ok
    search = b.alive & (rng.random(n) < 0.85)
    b.tool("kb_search", search, [_args(query=content.TICKET_SUBJECTS[s], top_k=5)
                                 for s in subject[search].tolist()],
           [_args(hits=5, top="KB-" + str(a)) for a in rng.integers(100, 999, search.sum())])
    account = b.alive & (rng.random(n) < 0.7)
    b.tool("get_account", account, [_args(email=e) for e in np.array(emails)[account].tolist()],
           [_args(plan="pro", seats=int(s)) for s in rng.integers(2, 80, account.sum())])

    draft = np.flatnonzero(b.alive)
    models = plan.triage_draft_model(runs.start_ns[draft])
    anthropic = np.array([m.startswith("claude") for m in models], dtype=bool)
    tokens_in = token_counts(rng, 3200, 0.3, len(draft))
    base_out = token_counts(rng, 260, 0.35, len(draft))
    out = np.where(anthropic, np.rint(base_out * 1.55).astype(np.int64), base_out)
    out, finish = _truncate(rng, out)
    cached = np.where(anthropic, _cached(rng, tokens_in, 0.7, 2048), _cached(rng, tokens_in, 0.5))
    ok = b.llm("draft_reply", b.alive, models, tokens_in, out, cached,
               [message[i] for i in draft.tolist()],
               content.drafted_replies(subject[draft], [names[i] for i in draft.tolist()]),
               finish)
    b.fatal |= ~ok

    escalate = b.alive & (rng.random(n) < wf.escalation_rate)
    update = b.alive & ~escalate
    ok_u, _ = b.tool("update_ticket", update,
                     [_args(ticket_id=int(t), status="solved") for t in ticket[update].tolist()],
                     [_args(ok=True)] * int(update.sum()),
                     subjects=[str(t) for t in ticket[update].tolist()])
    ok_c, _ = b.tool("create_ticket", escalate,
                     [_args(queue="tier2", priority="high" if u else "normal")
                      for u in urgent[escalate].tolist()],
                     [_args(ticket_id=int(t)) for t in ticket[escalate].tolist()])
    b.fatal |= ~(ok_u & ok_c)
    outcome = _outcome(rng, b, escalate, wf.failure_rate)
    channel = np.array(["email", "chat", "web_form"])[rng.integers(0, 3, n)].tolist()
    b.finish(outcome, {"ticket.channel": channel})
    return b.blocks


def kb_answer(runs: Runs, rng: np.random.Generator, plan: IncidentPlan) -> list[StepBlock]:
    wf = company.WORKFLOWS["kb_answer"]
    n = len(runs)
    b = TraceBuilder(runs, rng, plan)
    _, emails, _ = content.customer_contacts(rng, n)
    question_ix = content.pick(rng, content.KB_QUESTIONS, n)
    question = content.kb_questions(question_ix, emails, rng.random(n) < 0.15)
    article = rng.integers(100, 999, n)
    everyone = np.ones(n, dtype=bool)
    zeros = np.zeros(n, dtype=np.int64)

    ok = b.llm("embed_query", everyone, "text-embedding-3-small", token_counts(rng, 16, 0.3, n),
               zeros, zeros, question, [""] * n, kind="embedding")
    b.fatal |= ~ok
    search = np.flatnonzero(b.alive)
    ok, _ = b.tool("kb_search", b.alive, [_args(query=question[i], top_k=8)
                                          for i in search.tolist()],
                   [_args(hits=8, top=f"KB-{a}") for a in article[search].tolist()])
    b.fatal |= ~ok

    v2 = plan.kb_release_v2(runs.start_ns)
    rerank = b.alive & v2
    k = int(rerank.sum())
    b.llm("rerank_passages", rerank, "gpt-4.1-mini", token_counts(rng, 2600, 0.25, k),
          token_counts(rng, 150, 0.3, k), np.zeros(k, np.int64),
          [question[i] for i in np.flatnonzero(rerank).tolist()],
          [_args(ranking=[int(a), int(a) + 7, int(a) + 3]) for a in article[rerank].tolist()])
    live = np.flatnonzero(b.alive)
    tokens_in = token_counts(rng, 2100, 0.25, len(live))
    out, finish = _truncate(rng, token_counts(rng, 210, 0.35, len(live)))
    ok = b.llm("answer", b.alive, "gpt-4.1-mini", tokens_in, out, _cached(rng, tokens_in, 0.5),
               [question[i] for i in live.tolist()],
               content.kb_answers(question_ix[live], article[live]), finish)
    b.fatal |= ~ok
    verify = b.alive & v2
    k = int(verify.sum())
    b.llm("verify_answer", verify, "gpt-4.1-mini", token_counts(rng, 2500, 0.25, k),
          token_counts(rng, 180, 0.3, k), np.zeros(k, np.int64),
          [question[i] for i in np.flatnonzero(verify).tolist()],
          [_args(grounded=True, citations=[f"KB-{a}"]) for a in article[verify].tolist()])
    b.simple("guardrail", "pii_output_guard", b.alive, 18.0, 0.4, {"result": "pass"})

    escalate = b.alive & (rng.random(n) < wf.escalation_rate)
    outcome = _outcome(rng, b, escalate, wf.failure_rate)
    b.finish(outcome, {})
    return b.blocks


def refund_request(runs: Runs, rng: np.random.Generator, plan: IncidentPlan) -> list[StepBlock]:
    wf = company.WORKFLOWS["refund_request"]
    n = len(runs)
    b = TraceBuilder(runs, rng, plan)
    names, emails, _ = content.customer_contacts(rng, n)
    reason = content.pick(rng, content.REFUND_REASONS, n)
    cents = np.clip(np.rint(np.exp(np.log(6500) + 0.7 * rng.standard_normal(n))), 500, 90000
                    ).astype(np.int64)
    request = content.refund_requests(reason, cents, names, emails)
    everyone = np.ones(n, dtype=bool)

    ok, _ = b.tool("get_account", everyone, [_args(email=e) for e in emails],
                   [_args(plan="business", balance_eur=round(c / 100 * 3, 2))
                    for c in cents.tolist()])
    b.fatal |= ~ok
    live = np.flatnonzero(b.alive)
    tokens_in = token_counts(rng, 900, 0.2, len(live))
    ok = b.llm("extract_request", b.alive, "claude-3-5-haiku-20241022", tokens_in,
               token_counts(rng, 90, 0.25, len(live)), _cached(rng, tokens_in, 0.4, 640),
               [request[i] for i in live.tolist()],
               [_args(amount_eur=c / 100, reason=content.REFUND_REASONS[r])
                for c, r in zip(cents[live].tolist(), reason[live].tolist(), strict=True)])
    b.fatal |= ~ok
    b.simple("guardrail", "refund_policy_check", b.alive, 35.0, 0.4, {"result": "pass"})

    live = np.flatnonzero(b.alive)
    escalate = np.zeros(n, dtype=bool)
    escalate[live] = rng.random(len(live)) < plan.refund_escalation_rate(runs.start_ns[live])
    tokens_in = token_counts(rng, 2400, 0.2, len(live))
    ok = b.llm("decide", b.alive, "claude-sonnet-4-20250514", tokens_in,
               token_counts(rng, 150, 0.3, len(live)), _cached(rng, tokens_in, 0.6, 1536),
               [request[i] for i in live.tolist()],
               content.refund_decisions(~escalate[live], cents[live]))
    b.fatal |= ~ok
    escalate &= b.alive

    approve = b.alive & ~escalate
    ok, declined = b.tool(
        "issue_refund", approve,
        [_args(charge=f"ch_{i:06d}", amount_eur=c / 100)
         for i, c in zip(np.flatnonzero(approve).tolist(), cents[approve].tolist(), strict=True)],
        [_args(refund_id=f"re_{i:06d}", status="succeeded") for i in np.flatnonzero(approve)],
        extra_errors=[("rate_limited", plan.refund_rate_limit_share, "RateLimitError", 429, True)],
        max_attempts=3)
    escalate |= declined
    b.fatal |= ~ok & ~declined
    handoff = escalate & b.alive
    ok, _ = b.tool("create_ticket", handoff,
                   [_args(queue="billing", amount_eur=c / 100) for c in cents[handoff].tolist()],
                   [_args(ticket_id=int(t)) for t in rng.integers(100000, 999999, handoff.sum())])
    b.fatal |= ~ok
    live = np.flatnonzero(b.alive)
    tokens_in = token_counts(rng, 700, 0.2, len(live))
    b.fatal |= ~b.llm("reply", b.alive, "claude-3-5-haiku-20241022", tokens_in,
                      token_counts(rng, 120, 0.3, len(live)), np.zeros(len(live), np.int64),
                      [request[i] for i in live.tolist()],
                      ["Your refund is on its way." if not escalate[i] else
                       "A billing specialist will get back to you within one business day."
                       for i in live.tolist()])
    outcome = _outcome(rng, b, escalate, wf.failure_rate)
    b.finish(outcome, {"refund.amount_eur": (cents / 100).tolist()})
    return b.blocks


def account_config(runs: Runs, rng: np.random.Generator, plan: IncidentPlan) -> list[StepBlock]:
    wf = company.WORKFLOWS["account_config"]
    n = len(runs)
    b = TraceBuilder(runs, rng, plan)
    _, _, phones = content.customer_contacts(rng, n)
    request_ix = content.pick(rng, content.SETTINGS_REQUESTS, n)
    request = content.settings_requests(request_ix, phones, rng.random(n) < 0.2)
    account = [f"acct_{a:08x}" for a in rng.integers(0, 16**8, n).tolist()]
    everyone = np.ones(n, dtype=bool)

    ok, _ = b.tool("get_account", everyone, [_args(account_id=a) for a in account],
                   [_args(plan="enterprise", sso=False)] * n, subjects=account)
    b.fatal |= ~ok
    live = np.flatnonzero(b.alive)
    b.fatal |= ~b.llm("plan_changes", b.alive, "gpt-4o", token_counts(rng, 1400, 0.2, len(live)),
                      token_counts(rng, 110, 0.3, len(live)), np.zeros(len(live), np.int64),
                      [request[i] for i in live.tolist()],
                      content.settings_plans(request_ix[live]), "tool_calls")
    changes = rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1])
    for j in range(3):
        step = b.alive & (changes > j)
        idx = np.flatnonzero(step)
        ok, _ = b.tool("update_settings", step,
                       [_args(account_id=account[i], change=j + 1) for i in idx.tolist()],
                       [_args(applied=True)] * len(idx),
                       extra_errors=[("settings_schema", plan.settings_schema_share,
                                      "SettingsSchemaError", 422, False)],
                       subjects=[account[i] for i in idx.tolist()])
        b.fatal |= ~ok
    live = np.flatnonzero(b.alive)
    b.fatal |= ~b.llm("confirm", b.alive, "gpt-4o", token_counts(rng, 1800, 0.2, len(live)),
                      token_counts(rng, 80, 0.3, len(live)), np.zeros(len(live), np.int64),
                      [request[i] for i in live.tolist()],
                      ["Done! The change is live for your whole team."] * len(live))
    escalate = b.alive & (rng.random(n) < wf.escalation_rate)
    outcome = _outcome(rng, b, escalate, wf.failure_rate)
    b.finish(outcome, {})
    return b.blocks


def weekly_report(runs: Runs, rng: np.random.Generator, plan: IncidentPlan) -> list[StepBlock]:
    wf = company.WORKFLOWS["weekly_report"]
    n = len(runs)
    b = TraceBuilder(runs, rng, plan)
    tenant = [company.TENANTS[t] for t in runs.tenant.tolist()]
    queries = rng.integers(3, 7, n)
    for j in range(6):
        step = b.alive & (queries > j)
        ok, _ = b.tool("query_warehouse", step,
                       [_args(metric=["tickets", "first_response", "csat", "backlog", "sla",
                                      "channels"][j], tenant=tenant[i])
                        for i in np.flatnonzero(step).tolist()],
                       [_args(rows=int(r)) for r in rng.integers(7, 400, step.sum())])
        b.fatal |= ~ok
    live = np.flatnonzero(b.alive)
    tokens_in = token_counts(rng, 6500, 0.25, len(live))
    cached = _cached(rng, tokens_in, 0.5, 4096)
    writes = np.where((cached == 0) & (rng.random(len(live)) < 0.6), 4096, 0).astype(np.int64)
    b.fatal |= ~b.llm("write_report", b.alive, "claude-opus-4-1-20250805", tokens_in,
                      token_counts(rng, 1100, 0.25, len(live)), cached,
                      [f"Write the weekly support report for {tenant[i]}." for i in live.tolist()],
                      content.report_summaries([tenant[i] for i in live.tolist()],
                                               rng.integers(40, 4000, len(live))),
                      cache_write_tokens=writes)
    charts = rng.integers(2, 5, n)
    chart_model = plan.chart_model(runs.start_ns)
    for j in range(4):
        step = b.alive & (charts > j)
        idx = np.flatnonzero(step)
        b.fatal |= ~b.llm("caption_chart", step, [chart_model[i] for i in idx.tolist()],
                          token_counts(rng, 800, 0.2, len(idx)), token_counts(rng, 60, 0.3, len(idx)),
                          np.zeros(len(idx), np.int64), [f"Caption chart {j + 1}"] * len(idx),
                          [f"Tickets per day, week over week (chart {j + 1})."] * len(idx))
    ok, _ = b.tool("send_report_email", b.alive.copy(),
                   [_args(tenant=tenant[i]) for i in np.flatnonzero(b.alive).tolist()],
                   [_args(sent=True)] * int(b.alive.sum()))
    b.fatal |= ~ok
    escalate = b.alive & (rng.random(n) < wf.escalation_rate)
    outcome = _outcome(rng, b, escalate, wf.failure_rate)
    b.finish(outcome, {"report.scheduled": runs.scheduled.tolist()})
    return b.blocks


BUILDERS: dict[str, Callable[[Runs, np.random.Generator, IncidentPlan], list[StepBlock]]] = {
    "support_triage": support_triage,
    "kb_answer": kb_answer,
    "refund_request": refund_request,
    "account_config": account_config,
    "weekly_report": weekly_report,
}
