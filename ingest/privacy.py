"""Redaction of secrets and personal data before anything is stored, in DuckDB SQL.

Why SQL and not a Python regex per value: a batch holds millions of attribute values, and
a per-value Python call costs more than all the rest of ingest together. Instead every
value is first tested against ONE combined RE2 pattern (`regexp_matches`, a single linear
scan), and only the rare values that match go through the per-kind replacements, so each
kind keeps its own `[REDACTED:kind]` token.

Policy (`[privacy] content`):

* ``keep``   — content is stored, but *secrets* are still masked: API keys, bearer tokens,
  passwords and payment-card numbers. Nobody needs a live credential or a card number to
  debug an agent, and anyone who can read the store could use one, so `keep` means "keep
  the conversation", never "keep the keys".
* ``redact`` — secrets and personal data (e-mail addresses, phone numbers) are masked in
  content, in every string attribute value and in status/exception messages. The default.
* ``drop``   — as ``redact``, and prompt/completion content is not stored at all: the
  content columns are null and content-bearing attribute keys are left out of the map.

Card numbers are masked only when the digits pass the Luhn check (a macro over the digit
string), so order ids and timestamps that merely look long are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb

PrivacyMode = Literal["keep", "redact", "drop"]
MODES: tuple[str, ...] = ("keep", "redact", "drop")

# A batch's values are redacted joined into one string per span, with these two control
# characters as separator and null marker; no rule's pattern can match across them.
SEPARATOR = "\x1f"
NULL_MARK = "\x1e"

# Values shorter than this cannot hold anything we mask ("a@b.co" is the shortest), so the
# regex is not even run on them (most attribute values are short: "chat", "openai", "443").
MIN_SENSITIVE_LENGTH = 6

# Key names whose value is a credential, in `key=value`, `key: value` or JSON form.
_SECRET_KEY_NAMES = (
    r"(?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|client[_-]?secret"
    r"|secret[_-]?key)"
)
_PASSWORD_NAMES = r"(?:password|passwd|pwd)"
# A JSON key and its opening quote, possibly escaped (JSON inside a JSON string).
_JSON_KEY_TAIL = r'\\?"\s*:\s*\\?"'
_PLAIN_VALUE = r"""[^\s"'\\,;&}\x1e\x1f]+"""


@dataclass(frozen=True)
class Rule:
    """One kind of sensitive text: what finds it, what replaces it, and when it applies."""

    kind: str
    pattern: str          # RE2 syntax, as DuckDB's regexp functions take it
    replacement: str      # may refer to groups as \\1
    secret: bool          # masked under every policy, `keep` included


def _token(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# Order matters: credentials first (an API key may contain digits a phone pattern would
# take), then e-mail addresses, then card numbers (before phones, which are shorter).
RULES: tuple[Rule, ...] = (
    Rule("api_key", r"\bsk-[A-Za-z0-9_-]{16,}", _token("api_key"), True),
    Rule("api_key", r"\bAKIA[0-9A-Z]{16}\b", _token("api_key"), True),
    Rule("api_key", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
         _token("api_key"), True),
    Rule("api_key", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _token("api_key"), True),
    Rule("api_key", r"\bAIza[0-9A-Za-z_-]{35}", _token("api_key"), True),
    Rule("api_key", rf"(?i)({_SECRET_KEY_NAMES}{_JSON_KEY_TAIL})[^\"\\\x1e\x1f]+",
         r"\1" + _token("api_key"), True),
    Rule("api_key", rf"(?i)\b({_SECRET_KEY_NAMES}\s*[=:]\s*['\"]?){_PLAIN_VALUE}",
         r"\1" + _token("api_key"), True),
    Rule("bearer", r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*",
         r"\1" + _token("bearer"), True),
    # A JSON Web Token anywhere (cookies, headers without "Bearer"): header.payload.sig.
    Rule("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
         _token("jwt"), True),
    Rule("password", rf"(?i)({_PASSWORD_NAMES}{_JSON_KEY_TAIL})[^\"\\\x1e\x1f]+",
         r"\1" + _token("password"), True),
    Rule("password", rf"(?i)\b({_PASSWORD_NAMES}\s*[=:]\s*['\"]?){_PLAIN_VALUE}",
         r"\1" + _token("password"), True),
    Rule("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
         _token("email"), False),
    # Card numbers are handled by CARD_CANDIDATE + Luhn below, between e-mail and phone.
    Rule("phone",
         r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
         r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4})\b",
         _token("phone"), False),
)

# 13 to 19 digits, optionally grouped by spaces or dashes, starting with a digit that
# card networks use (2-6): Unix timestamps (1...) and zero-padded ids never qualify. The
# digits must not follow a dot or a digit (group 1 is the candidate; RE2 has no
# look-behind), so the fraction digits of a float such as 0.6367380023002625 are kept.
CARD_CANDIDATE = r"(?:^|[^0-9.])([2-6](?:\d[ -]?){11,17}\d)\b"
CARD_TOKEN = _token("card")


def rules_for(mode: str) -> tuple[Rule, ...]:
    """The rules a policy applies (cards are secrets and handled apart, see CARD_CANDIDATE)."""
    if mode not in MODES:
        raise ValueError(f"unknown privacy mode {mode!r}; expected one of {', '.join(MODES)}")
    return tuple(r for r in RULES if r.secret or mode != "keep")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def detect_pattern(mode: str) -> str:
    """One RE2 pattern that matches wherever any rule of the policy (or a card) might."""
    parts = [r.pattern.removeprefix("(?i)") for r in rules_for(mode)] + [CARD_CANDIDATE]
    # Case-insensitive as a whole: harmless for the case-sensitive rules (it only lets more
    # values through to the exact per-rule replacements, which decide).
    return "(?i)" + "|".join(f"(?:{p})" for p in parts)


def macro(mode: str, name: str) -> str:
    """The name of one of a policy's macros (each policy has its own set)."""
    return f"stepscope_{name}_{mode}"


def macro_sql(mode: str) -> str:
    """DuckDB macros for one policy, all named `stepscope_<what>_<mode>`.

    - `luhn_ok(candidate)`: the Luhn check over a card candidate's digits;
    - `redact_cards(s)`: replaces the Luhn-valid card candidates only;
    - `redact_text(s)`: the whole replacement chain (secrets, e-mail, cards, phones);
    - `redact(s)`: one value: the chain when the combined pattern flags it, else `s`;
    - `join_values(list)` / `redact_joined(joined)` / `split_values(redacted, list)`: a
      whole list at once, for batches. The values are joined with a separator no rule
      can match across, tested with the combined pattern in one scan, redacted in one
      pass when flagged (null otherwise), and split back; a list whose values contain
      the separator themselves falls back to value by value.

    No regular expression runs inside a lambda on the hot path: DuckDB prepares a lambda
    body for every chunk it runs on, and preparing a dozen patterns costs milliseconds.
    """
    # Cards go after the credential and e-mail rules and before the phone rule.
    rules = rules_for(mode)
    phone_at = next((i for i, r in enumerate(rules) if r.kind == "phone"), len(rules))
    chain = _chain(rules[phone_at:], f"{macro(mode, 'redact_cards')}({_chain(rules[:phone_at], 's')})")
    detect = _sql_str(detect_pattern(mode))
    sep, null_mark = _sql_str(SEPARATOR), _sql_str(NULL_MARK)
    m = {name: macro(mode, name) for name in (
        "luhn_ok", "redact_cards", "redact_text", "redact", "join_values", "redact_joined",
        "split_values")}
    return f"""
CREATE OR REPLACE TEMP MACRO {m['luhn_ok']}(candidate) AS (
    list_sum(list_transform(
        string_split(reverse(replace(replace(candidate, ' ', ''), '-', '')), ''),
        lambda d, i: CASE WHEN i % 2 = 1 THEN d::INTEGER
                          WHEN d::INTEGER * 2 > 9 THEN d::INTEGER * 2 - 9
                          ELSE d::INTEGER * 2 END
    )) % 10 = 0
);
CREATE OR REPLACE TEMP MACRO {m['redact_cards']}(s) AS (
    CASE WHEN regexp_matches(s, {_sql_str(CARD_CANDIDATE)}) THEN list_reduce(
        list_prepend(s, list_filter(regexp_extract_all(s, {_sql_str(CARD_CANDIDATE)}, 1),
                                    lambda c: {m['luhn_ok']}(c))),
        lambda acc, c: replace(acc, c, {_sql_str(CARD_TOKEN)}))
    ELSE s END
);
CREATE OR REPLACE TEMP MACRO {m['redact_text']}(s) AS ({chain});
CREATE OR REPLACE TEMP MACRO {m['redact']}(s) AS (
    CASE WHEN length(s) >= {MIN_SENSITIVE_LENGTH} AND regexp_matches(s, {detect})
         THEN {m['redact_text']}(s) ELSE s END
);
CREATE OR REPLACE TEMP MACRO {m['join_values']}(vals) AS (
    array_to_string(list_transform(vals, lambda v: coalesce(v, {null_mark})), {sep})
);
CREATE OR REPLACE TEMP MACRO {m['redact_joined']}(joined) AS (
    CASE WHEN regexp_matches(joined, {detect}) THEN {m['redact_text']}(joined) END
);
CREATE OR REPLACE TEMP MACRO {m['split_values']}(redacted, vals) AS (
    CASE WHEN redacted IS NULL THEN NULL
         WHEN len(string_split(redacted, {sep})) = len(vals)
         THEN list_transform(string_split(redacted, {sep}), lambda v: nullif(v, {null_mark}))
         ELSE list_transform(vals, lambda v: {m['redact']}(v)) END
);
"""


def _chain(rules: tuple[Rule, ...], start: str) -> str:
    expr = start
    for rule in rules:
        expr = (f"regexp_replace({expr}, {_sql_str(rule.pattern)}, "
                f"{_sql_str(rule.replacement)}, 'g')")
    return expr


def install(con: duckdb.DuckDBPyConnection, mode: str) -> None:
    """Define the redaction macros for `mode` on a connection (safe to repeat)."""
    con.execute(macro_sql(mode))


def redact_values(con: duckdb.DuckDBPyConnection, values: list[str | None],
                  mode: str = "redact") -> list[str | None]:
    """Redact a handful of strings (for tests and one-off use; batches use the macros)."""
    install(con, mode)
    rows = con.execute(
        f"SELECT list_transform(?::VARCHAR[], lambda v: {macro(mode, 'redact')}(v))", [values]
    ).fetchone()
    return list(rows[0])
