"""Texts of the sample: customer messages, model replies and error messages.

Error messages vary in their ids, numbers, hosts and quoted values exactly as real ones
do, so that failure clustering has real templates to mine (the constant words are the
template; everything random is what a normaliser must mask). Customer messages carry
fake e-mail addresses and phone numbers (example.com, 555 numbers) so that redaction is
visible. Every function takes the generator and a count and returns one text per item,
so the simulation stays column-wise.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

FIRST_NAMES = ("maria", "jonas", "aiko", "lucas", "fatima", "oliver", "priya", "mateo",
               "sofia", "liam", "chen", "amara", "noah", "elena", "kofi", "ines")
LAST_NAMES = ("keller", "nguyen", "silva", "okafor", "berg", "moreau", "tanaka", "rossi",
              "haddad", "novak", "murphy", "costa", "lindqvist", "patel", "mensah", "weber")


def _hex(rng: np.random.Generator, n: int, width: int) -> list[str]:
    """`n` random lower-case hex strings of `width` (at most 15) digits."""
    values = rng.integers(0, 16**width, size=n, dtype=np.int64)
    return [f"{v:0{width}x}" for v in values.tolist()]


def _ints(rng: np.random.Generator, n: int, low: int, high: int) -> list[int]:
    return rng.integers(low, high, size=n).tolist()


def customer_contacts(rng: np.random.Generator, n: int) -> tuple[list[str], list[str], list[str]]:
    """Names, e-mail addresses and phone numbers of `n` fictional customers."""
    first = rng.integers(0, len(FIRST_NAMES), n).tolist()
    last = rng.integers(0, len(LAST_NAMES), n).tolist()
    num = _ints(rng, n, 1, 999)
    phone = _ints(rng, n, 100, 199)
    names = [f"{FIRST_NAMES[f].title()} {LAST_NAMES[s].title()}" for f, s in zip(first, last, strict=True)]
    emails = [f"{FIRST_NAMES[f]}.{LAST_NAMES[s]}{k}@example.com"
              for f, s, k in zip(first, last, num, strict=True)]
    phones = [f"+1 415 555 0{p}" for p in phone]
    return names, emails, phones


# -- error messages ----------------------------------------------------------------------

Rng = np.random.Generator
Subjects = list[str] | None
MessageFn = Callable[[Rng, int, Subjects], list[str]]



def _subjects(subjects: list[str] | None, drawn: list[str]) -> list[str]:
    """The ids the failing calls were about when known, else the randomly drawn ones."""
    return drawn if subjects is None else subjects


def _search_unavailable(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return [f"Search backend unavailable: connection refused (opensearch-{k}.internal:9200)"
            for k in _ints(rng, n, 1, 7)]


def _account_timeout(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return [f"Timeout after 30000 ms calling https://billing.internal/accounts/{k}"
            for k in _ints(rng, n, 10000, 99999)]


def _account_not_found(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    ids = _subjects(subjects, [f"acct_{h}" for h in _hex(rng, n, 8)])
    return [f"Account {a} not found" for a in ids]


def _ticket_create_unavailable(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return [f"Zendesk API returned 503 Service Unavailable for POST /api/v2/tickets "
            f"(request id {a}-{b})" for a, b in zip(_hex(rng, n, 8), _hex(rng, n, 12), strict=True)]


def _ticket_update_unavailable(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    ids = _subjects(subjects, [str(t) for t in _ints(rng, n, 100000, 999999)])
    return [f"Zendesk API returned 503 Service Unavailable for PUT /api/v2/tickets/{t}" for t in ids]


def _refund_declined(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    cents = _ints(rng, n, 1500, 45000)
    return [f"Payment provider declined refund of {c / 100:.2f} EUR for charge ch_{h}: "
            f"amount exceeds refundable balance" for c, h in zip(cents, _hex(rng, n, 12), strict=True)]


def _settings_conflict(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    ids = _subjects(subjects, [f"acct_{h}" for h in _hex(rng, n, 8)])
    return [f'Settings for account {a} were modified by another session (etag "{e}" is stale)'
            for a, e in zip(ids, _hex(rng, n, 10), strict=True)]


def _warehouse_timeout(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return [f"Query q_{q} exceeded the 60 s timeout on warehouse cluster wh-{k}"
            for q, k in zip(_hex(rng, n, 12), _ints(rng, n, 1, 4), strict=True)]


def _smtp_rejected(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    _, emails, _ = customer_contacts(rng, n)
    return [f"SMTP 550 5.1.1 recipient rejected: <{e}>" for e in emails]


def _rate_limited(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return [f"Rate limit exceeded for tool issue_refund, retry after {s}s"
            for s in _ints(rng, n, 4, 31)]


def _settings_schema(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    ids = _subjects(subjects, [f"acct_{h}" for h in _hex(rng, n, 8)])
    return [f"Settings API rejected update for account {a}: unknown field "
            f"'notification_prefs.quiet_hours' (schema 2026-11-13)" for a in ids]


def _openai_server_error(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return ["Error code: 500 - {'error': {'message': 'The server had an error while processing "
            "your request. Sorry about that! (Please include the request ID "
            f"req_{a}{b} in your message.)', 'type': 'server_error', 'param': None, "
            "'code': None}}" for a, b in zip(_hex(rng, n, 15), _hex(rng, n, 15), strict=True)]


def _openai_timeout(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return ["Request timed out."] * n


def _anthropic_overloaded(rng: Rng, n: int, subjects: Subjects) -> list[str]:
    return ["Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', "
            f"'message': 'Overloaded'}}, 'request_id': 'req_011C{a}{b}'}}"
            for a, b in zip(_hex(rng, n, 10), _hex(rng, n, 10), strict=True)]


ERROR_MESSAGES: dict[str, MessageFn] = {
    "search_unavailable": _search_unavailable,
    "account_timeout": _account_timeout,
    "account_not_found": _account_not_found,
    "ticket_api_unavailable:create_ticket": _ticket_create_unavailable,
    "ticket_api_unavailable:update_ticket": _ticket_update_unavailable,
    "refund_declined": _refund_declined,
    "settings_conflict": _settings_conflict,
    "warehouse_timeout": _warehouse_timeout,
    "smtp_rejected": _smtp_rejected,
    "rate_limited": _rate_limited,
    "settings_schema": _settings_schema,
    "openai_server_error": _openai_server_error,
    "openai_timeout": _openai_timeout,
    "anthropic_overloaded": _anthropic_overloaded,
}


def error_messages(kind: str, tool: str | None, rng: np.random.Generator, n: int,
                   subjects: list[str] | None = None) -> list[str]:
    """`n` messages of one failure kind; `subjects` (account or ticket ids) when known."""
    fn = ERROR_MESSAGES.get(f"{kind}:{tool}") or ERROR_MESSAGES[kind]
    return fn(rng, n, subjects)


# -- conversation texts --------------------------------------------------------------------

TICKET_SUBJECTS = (
    "I was charged twice for the Pro plan this month",
    "Cannot log in after enabling SSO",
    "Export to CSV stops at 10,000 rows",
    "How do I add another agent seat?",
    "Webhook deliveries are failing since this morning",
    "Please cancel my subscription at the end of the term",
    "The chat widget does not load on Safari",
    "Invoice shows the wrong VAT number",
)
TICKET_CATEGORIES = ("billing", "authentication", "reporting", "seats", "integrations",
                     "cancellation", "widget", "invoicing")
KB_QUESTIONS = (
    "How do I set up business hours for my team?",
    "Can I route tickets by language automatically?",
    "Where do I find the API key for the webhooks integration?",
    "How long are closed tickets kept?",
    "Does the chat widget support dark mode?",
    "How can I merge two customer profiles?",
)
SETTINGS_REQUESTS = (
    "Turn off e-mail notifications for new tickets at night",
    "Enable SSO with our Okta tenant",
    "Add three more agent seats to our plan",
    "Send a Slack message when a ticket is escalated",
    "Change the default ticket priority to normal",
)
REFUND_REASONS = (
    "was billed after cancelling",
    "was charged twice for the same invoice",
    "downgraded but paid the old price",
    "never used the add-on that was charged",
)


def pick(rng: np.random.Generator, options: tuple[str, ...], n: int) -> np.ndarray:
    """Indices into `options`, one per item (kept as indices so texts can be rebuilt)."""
    return rng.integers(0, len(options), n)


def ticket_messages(subject: np.ndarray, names: list[str], emails: list[str],
                    phones: list[str], with_phone: np.ndarray) -> list[str]:
    out = []
    for s, name, email, phone, wp in zip(subject.tolist(), names, emails, phones,
                                         with_phone.tolist(), strict=True):
        contact = f" You can call me on {phone}." if wp else ""
        out.append(f"{TICKET_SUBJECTS[s]}. My login is {email}.{contact} Thanks, {name}")
    return out


def classification_replies(category: np.ndarray, urgent: np.ndarray) -> list[str]:
    return [json.dumps({"category": TICKET_CATEGORIES[c], "priority": "high" if u else "normal"})
            for c, u in zip(category.tolist(), urgent.tolist(), strict=True)]


def drafted_replies(subject: np.ndarray, names: list[str]) -> list[str]:
    return [f"Hi {name.split()[0]}, thanks for reaching out about \"{TICKET_SUBJECTS[s].lower()}\". "
            "I have checked your account and here is what happened and what we will do next."
            for s, name in zip(subject.tolist(), names, strict=True)]


def kb_questions(question: np.ndarray, emails: list[str], with_email: np.ndarray) -> list[str]:
    return [f"{KB_QUESTIONS[q]}" + (f" (reply to {e})" if we else "")
            for q, e, we in zip(question.tolist(), emails, with_email.tolist(), strict=True)]


KB_ANSWERS = (
    "Go to Settings > Teams > Business hours, pick your time zone and add the opening hours.",
    "Yes: create a routing rule with the condition 'Language is' and choose the target group.",
    "Open Settings > Integrations > Webhooks; the key is shown once when you create the hook.",
    "Closed tickets are kept for 24 months, then archived; admins can export them any time.",
    "Yes, the widget follows the visitor's system theme; you can force dark mode in Appearance.",
    "Open one profile, choose Merge, search for the other and confirm; history is combined.",
)


def kb_answers(question: np.ndarray, article: np.ndarray) -> list[str]:
    return [f"{KB_ANSWERS[q]} More in article KB-{a}." for q, a in
            zip(question.tolist(), article.tolist(), strict=True)]


def refund_requests(reason: np.ndarray, cents: np.ndarray, names: list[str],
                    emails: list[str]) -> list[str]:
    return [f"Hello, this is {name} ({email}). I {REFUND_REASONS[r]} and would like a refund of "
            f"{c / 100:.2f} EUR." for r, c, name, email in
            zip(reason.tolist(), cents.tolist(), names, emails, strict=True)]


def refund_decisions(approve: np.ndarray, cents: np.ndarray) -> list[str]:
    return [json.dumps({"decision": "approve" if a else "escalate", "amount_eur": c / 100})
            for a, c in zip(approve.tolist(), cents.tolist(), strict=True)]


def settings_requests(request: np.ndarray, phones: list[str], with_phone: np.ndarray) -> list[str]:
    return [SETTINGS_REQUESTS[r] + (f". Call {p} if you need details." if wp else ".")
            for r, p, wp in zip(request.tolist(), phones, with_phone.tolist(), strict=True)]


def settings_plans(request: np.ndarray) -> list[str]:
    return [f"Plan: read current settings, apply '{SETTINGS_REQUESTS[r].lower()}', confirm."
            for r in request.tolist()]


def report_summaries(tenant: list[str], tickets: np.ndarray) -> list[str]:
    return [f"Weekly report for {t}: {k} tickets, median first response 2h 10m, top driver: "
            "billing questions." for t, k in zip(tenant, tickets.tolist(), strict=True)]
