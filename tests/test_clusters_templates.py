"""Error messages become templates (variable values masked) and templates stable ids."""

from __future__ import annotations

import pytest

from stepscope.analytics.error_templates import fingerprint, normalise_messages
from stepscope.analytics.template_groups import group_templates, mine_templates


@pytest.mark.parametrize(("message", "template"), [
    ("Account acct_3f9a2b1c not found", "Account acct_<ID> not found"),
    # A prefixed id made only of letters a-f still reads as an id.
    ("Account acct_abcdefab not found", "Account acct_<ID> not found"),
    ("Timeout after 30000 ms calling https://billing.internal/accounts/48213",
     "Timeout after <NUM> ms calling <URL>"),
    ("SMTP 550 5.1.1 recipient rejected: <jane.doe12@example.com>",
     "SMTP <NUM> <NUM> recipient rejected: <<EMAIL>>"),
    ("job 550e8400-e29b-41d4-a716-446655440000 failed", "job <UUID> failed"),
    ("lease expired at 2026-11-13T10:22:33.123Z (checked 10:22:35)",
     "lease expired at <TS> (checked <TS>)"),
    ("Zendesk API returned 503 Service Unavailable for POST /api/v2/tickets "
     "(request id 3fa9b2c1-0a1b2c3d4e5f)",
     "Zendesk API returned <NUM> Service Unavailable for POST /api/v2/tickets "
     "(request id <HEX>-<HEX>)"),
    ("pointer 0x7ffd3a21 is invalid", "pointer <HEX> is invalid"),
    ("Rate limit exceeded for tool issue_refund, retry after 12s",
     "Rate limit exceeded for tool issue_refund, retry after <NUM>s"),
    ("connection refused (opensearch-3.internal:9200)",
     "connection refused (opensearch-<NUM>.internal:<NUM>)"),
    # Quoted values go; quoted names (dict keys, error codes, field paths) stay.
    ('etag "4f3a9b21e0" is stale', 'etag "<VAL>" is stale'),
    ("unknown field 'notification_prefs.quiet_hours'",
     "unknown field 'notification_prefs.quiet_hours'"),
    ("{'type': 'overloaded_error', 'request_id': 'req_011CabC3dEf9'}",
     "{'type': 'overloaded_error', 'request_id': '<VAL>'}"),
    # Model names and versions are constants, not values.
    ("gpt-4o refused the v2 schema", "gpt-4o refused the v2 schema"),
    ("  spread \n over   lines ", "spread over lines"),
    ("", ""),
    (None, None),
])
def test_masks(message: str | None, template: str | None) -> None:
    assert normalise_messages([message]) == [template]


def test_messages_differing_only_in_values_share_a_template() -> None:
    messages = [f"Payment provider declined refund of {c / 100:.2f} EUR for charge ch_{h}: "
                "amount exceeds refundable balance"
                for c, h in ((1500, "a1b2c3d4e5f6"), (45000, "0f9e8d7c6b5a"), (2399, "ffffffaaaaaa"))]
    assert set(normalise_messages(messages)) == {
        "Payment provider declined refund of <NUM> EUR for charge ch_<ID>: "
        "amount exceeds refundable balance"
    }


def test_long_messages_are_cut() -> None:
    (template,) = normalise_messages(["x" * 5000])
    assert len(template) == 400


def test_fingerprint_is_a_hash_of_the_failure_alone() -> None:
    template = "Rate limit exceeded for tool issue_refund, retry after <NUM>s"
    assert fingerprint("RateLimitError", 429, "issue_refund", template) == "3905be06135209ba"
    assert fingerprint("RateLimitError", 429, "issue_refund", template) == fingerprint(
        "RateLimitError", 429, "issue_refund", template)
    others = {
        fingerprint("RateLimitError", 503, "issue_refund", template),
        fingerprint("RateLimitError", None, "issue_refund", template),
        fingerprint("RateLimitError", 429, "get_account", template),
        fingerprint("RateLimitError", 429, None, template),
        fingerprint("TooManyRequests", 429, "issue_refund", template),
        fingerprint("RateLimitError", 429, "issue_refund", template + "."),
    }
    assert len(others) == 6
    assert "3905be06135209ba" not in others


def test_templates_differing_in_one_token_are_mined_into_one() -> None:
    templates = [
        "Settings API rejected update for account acct_<ID>: unknown field "
        "'notification_prefs.quiet_hours' (schema <TS>)",
        "Settings API rejected update for account acct_<ID>: unknown field 'sso.domain' "
        "(schema <TS>)",
        "Settings API rejected update for account acct_<ID>: unknown field 'seats' (schema <TS>)",
        "Settings for account acct_<ID> were modified by another session (etag \"<VAL>\" is stale)",
        "Request timed out.",
        "Request failed.",  # too short to mine: one word of three is not "the same failure"
    ]
    groups, mined = mine_templates(templates, ["b"] * len(templates))
    assert groups.tolist() == [0, 0, 0, 1, 2, 3]
    assert mined[0] == ("Settings API rejected update for account acct_<ID>: unknown field <*> "
                        "(schema <TS>)")
    assert mined[1:] == templates[3:]


def test_mining_stays_within_a_block_and_a_length() -> None:
    templates = ["unknown field 'a' in request", "unknown field 'b' in request",
                 "unknown field 'c' in request", "unknown field 'd' in this request"]
    groups, _ = mine_templates(templates, ["x", "x", "y", "x"])
    assert groups.tolist() == [0, 0, 1, 2]


def test_near_identical_templates_group_and_distinct_ones_do_not() -> None:
    templates = [
        "Zendesk API returned <NUM> Service Unavailable for POST /api/v2/tickets "
        "(request id <HEX>-<HEX>)",
        "Zendesk API returned <NUM> Service Unavailable for PUT /api/v2/tickets/<NUM>",
        "Settings for account acct_<ID> were modified by another session (etag \"<VAL>\" is stale)",
        "Request timed out.",
    ]
    groups, labels = group_templates(templates, ["b"] * 4, [10, 30, 5, 3])
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3]}) == 3
    # The template most of the group's failures said labels it.
    assert labels[groups[0]] == templates[1]
    assert labels[groups[2]] == templates[2]


def test_templates_of_different_error_types_never_group() -> None:
    groups, _ = group_templates(["Request timed out.", "Request timed out."], ["a", "b"], [1, 1])
    assert groups[0] != groups[1]
