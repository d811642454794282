"""Secrets and personal data are masked before storage, per `[privacy] content`."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from normalise_helpers import attrs, config, one
from otlp_builders import STATUS_ERROR, T0, exception_event, span

from stepscope.ingest import privacy
from stepscope.ingest.privacy import redact_values, rules_for


@pytest.mark.parametrize(("text", "expected"), [
    ("mail jane.doe+tickets@example.co.uk today", "mail [REDACTED:email] today"),
    ("call +1 415 555 0132 now", "call [REDACTED:phone] now"),
    ("or (415) 555-0132", "or [REDACTED:phone]"),
    ("or 415-555-0132.", "or [REDACTED:phone]."),
    ("UK +44 20 7946 0958", "UK [REDACTED:phone]"),
    ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "key [REDACTED:api_key]"),
    ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "[REDACTED:api_key]"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws [REDACTED:api_key] here"),
    ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "[REDACTED:api_key]"),
    ("slack xoxb-1234567890-abcdefghijkl", "slack [REDACTED:api_key]"),
    ("url?api_key=abc123&x=1", "url?api_key=[REDACTED:api_key]&x=1"),
    ('{"api-key": "zz top"}', '{"api-key": "[REDACTED:api_key]"}'),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer [REDACTED:bearer]"),
    ("cookie sid=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N; x",
     "cookie sid=[REDACTED:jwt]; x"),
    ("password=hunter2 then", "password=[REDACTED:password] then"),
    ("Password: 'hunter2'", "Password: '[REDACTED:password]'"),
    ('{"password": "correct horse battery"}', '{"password": "[REDACTED:password]"}'),
    ('{\\"password\\": \\"s3cret\\"}', '{\\"password\\": \\"[REDACTED:password]\\"}'),
    ("card 4111 1111 1111 1111 exp 12/29", "card [REDACTED:card] exp 12/29"),
    ("amex 3782-822463-10005", "amex [REDACTED:card]"),
    ("visa 4012888888881881,", "visa [REDACTED:card],"),
])
def test_each_kind_is_masked(text, expected):
    assert redact_values([text], "redact") == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("PaSsWoRd=hunter2", "PaSsWoRd=[REDACTED:password]"),
    ("BEARER abc.def-1", "BEARER [REDACTED:bearer]"),
    ("X-API-KEY: zz", "X-API-KEY: [REDACTED:api_key]"),
    # Not ASCII: case folding goes beyond A-Z (the long s folds to s, the Kelvin sign to
    # k), so these texts are always searched with the case-insensitive rule itself.
    ("café paſſword=x", "café paſſword=[REDACTED:password]"),
    ("api_\u212aey=abc", "api_\u212aey=[REDACTED:api_key]"),
    ("naïve secret_key: v", "naïve secret_key: [REDACTED:api_key]"),
])
def test_case_insensitive_rules_match_any_case(text, expected):
    assert redact_values([text, "plain words"], "keep") == [expected, "plain words"]


def test_every_rule_after_the_others_sees_their_replacements():
    text = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t password=hunter2 jane@example.com 4111 1111 1111 1111"
    assert redact_values([text], "redact") == [
        "[REDACTED:api_key] password=[REDACTED:password] [REDACTED:email] [REDACTED:card]"]


@pytest.mark.parametrize("text", [
    "order 4111 1111 1111 1112",            # fails the Luhn check
    "ts 1794301200000000000",               # a nanosecond timestamp
    "[0.6367380023002625, -0.4012888888881881]",  # float digits
    "gpt-4o-mini-2024-07-18 on 2026-11-10 at 10.0.0.1 v1.45.2",
    "the bearer of good news",
    "max_tokens=512 temperature=0.2",
    "550e8400-e29b-41d4-a716-446655440000",
])
def test_lookalikes_are_kept(text):
    assert redact_values([text], "redact") == [text]


def test_keep_masks_secrets_and_cards_but_not_contact_details():
    values = ["jane@example.com", "+1 415 555 0132", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
              "Bearer abc.def.ghi", "password=hunter2", "4111111111111111", None]
    assert redact_values(values, "keep") == [
        "jane@example.com", "+1 415 555 0132", "[REDACTED:api_key]", "Bearer [REDACTED:bearer]",
        "password=[REDACTED:password]", "[REDACTED:card]", None]


def chat_span(**extra):
    return [span("chat gpt-4o", trace=1, span=1, status=STATUS_ERROR,
                 status_message="failed for jane@example.com with key sk-proj-Ab3dEf6hIj9kLm2nOp5q",
                 events=[exception_event("openai.AuthenticationError",
                                         "Incorrect API key provided: sk-proj-Ab3dEf6hIj9kLm2nOp5q",
                                         T0)],
                 attributes={
                     "gen_ai.operation.name": "chat",
                     "gen_ai.request.model": "gpt-4o",
                     "user.id": "jane@example.com",
                     "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                         {"type": "text", "content": "I am jane@example.com, card 4111 1111 1111 1111"}]}]),
                     "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                         {"type": "text", "content": "Call +1 415 555 0132"}]}]),
                     "llm.headers": "Authorization: Bearer eyJabc.def.ghi",
                     **extra})]


RESOURCE = {"service.name": "support", "process.command_args": "run --api_key=topsecret"}


def test_redact_masks_content_columns_attributes_messages_and_resource():
    row = one(chat_span(), config(privacy={"content": "redact"}), resource=RESOURCE)
    assert row["input_content"] == "I am [REDACTED:email], card [REDACTED:card]"
    assert row["output_content"] == "Call [REDACTED:phone]"
    assert row["user_id"] == "[REDACTED:email]"
    assert attrs(row)["user.id"] == "[REDACTED:email]"
    assert attrs(row)["llm.headers"] == "Authorization: Bearer [REDACTED:bearer]"
    assert row["status_message"] == "failed for [REDACTED:email] with key [REDACTED:api_key]"
    assert row["error_message"] == "Incorrect API key provided: [REDACTED:api_key]"
    assert dict(row["resource_attributes"])["process.command_args"] == "run --api_key=[REDACTED:api_key]"
    assert row["request_model"] == "gpt-4o"


def test_keep_stores_content_but_never_secrets():
    row = one(chat_span(), config(privacy={"content": "keep"}), resource=RESOURCE)
    assert row["input_content"] == "I am jane@example.com, card [REDACTED:card]"
    assert row["output_content"] == "Call +1 415 555 0132"
    assert row["user_id"] == "jane@example.com"
    assert row["status_message"] == "failed for jane@example.com with key [REDACTED:api_key]"
    assert attrs(row)["llm.headers"] == "Authorization: Bearer [REDACTED:bearer]"
    assert dict(row["resource_attributes"])["process.command_args"] == "run --api_key=[REDACTED:api_key]"


def test_drop_stores_no_content_and_masks_the_rest():
    row = one(chat_span(**{"input.value": "hello", "gen_ai.prompt.0.content": "hi",
                           "ai.response.text": "ok", "gen_ai.tool.call.arguments": "{}"}),
              config(privacy={"content": "drop"}), resource=RESOURCE)
    assert (row["input_content"], row["output_content"]) == (None, None)
    assert sorted(attrs(row)) == ["gen_ai.operation.name", "gen_ai.request.model", "llm.headers",
                                  "user.id"]
    assert row["user_id"] == "[REDACTED:email]"
    assert row["status_message"] == "failed for [REDACTED:email] with key [REDACTED:api_key]"


def test_spans_with_nothing_sensitive_are_stored_unchanged():
    row = one([span("chat", trace=1, span=1, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.input.messages": "[]", "n": 4111})])
    assert attrs(row) == {"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[]",
                          "n": "4111"}


def _every_rule_on_every_text(texts: list[str], mode: str) -> list[str]:
    """The policy applied the plain way: each rule replaced in every text, in order."""
    series = pl.Series(texts, dtype=pl.String)
    rules = rules_for(mode)
    phone_at = next(i for i, r in enumerate(rules) if r.kind == "phone") if mode != "keep" else len(rules)
    for rule in rules[:phone_at]:
        series = series.str.replace_all(rule.pattern, rule.replacement)
    series = privacy._redact_cards(series)
    for rule in rules[phone_at:]:
        series = series.str.replace_all(rule.pattern, rule.replacement)
    return series.to_list()


_FRAGMENTS = ["password", "PassWord", "paſſword", "pwd", "api_key", "API-KEY", "secret_key",
              "bearer", "Bearer", "token", "=", ": ", '"', "\\\"", " ", "hunter2", "é", "K",
              "sk-", "Ab3dEf6hIj9kLm2nOp5qRs8t", "jane@example.com", "+1 415 555 0132",
              "4111 1111 1111 1111", "4111 1111 1111 1112", "12345", "eyJhbGciOiJIUzI1NiJ9", "."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join), max_size=20),
       st.sampled_from(["keep", "redact"]))
def test_searching_before_replacing_changes_nothing(texts, mode):
    expected = [t if len(t) < privacy.MIN_SENSITIVE_LENGTH else r
                for t, r in zip(texts, _every_rule_on_every_text(texts, mode), strict=True)]
    assert redact_values(texts, mode) == expected
