"""Redaction of secrets and personal data before anything is stored, column-wise.

Why not a Python regex per value: a batch holds millions of attribute values, and a
per-value Python call costs more than all the rest of ingest together. Instead a whole
column of values goes through polars' string kernels (Rust's `regex` crate): every value
is first tested against ONE combined pattern, and only the values that match go through
the per-kind replacements, so each kind keeps its own `[REDACTED:kind]` token; each
replacement runs only on the texts its rule is found in (`_apply_rules`). (The same
work in DuckDB's RE2 functions costs about five times as much: every replacement is a
full scan there, whereas Rust's engine skips ahead to the literal parts of a pattern.)

Policy (`[privacy] content`):

* ``keep``   — content is stored, but *secrets* are still masked: API keys, bearer tokens,
  passwords and payment-card numbers. Nobody needs a live credential or a card number to
  debug an agent, and anyone who can read the store could use one, so `keep` means "keep
  the conversation", never "keep the keys".
* ``redact`` — secrets and personal data (e-mail addresses, phone numbers) are masked in
  content, in every string attribute value and in status/exception messages. The default.
* ``drop``   — as ``redact``, and prompt/completion content is not stored at all: the
  content columns are null and content-bearing attribute keys are left out of the map.

Card numbers are masked only when the digits pass the Luhn check (computed for all the
candidates of a batch at once with numpy), so order ids and timestamps that merely look
long are kept.

The patterns are written for Rust's `regex` syntax, kept to ASCII semantics on purpose:
`[0-9]` rather than `\\d` (which would take any Unicode digit), `(?-u:\\b)` for word
boundaries and an explicit class for white space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

PrivacyMode = Literal["keep", "redact", "drop"]
MODES: tuple[str, ...] = ("keep", "redact", "drop")

# Values shorter than this cannot hold anything we mask ("a@b.co" is the shortest), so the
# regex is not even run on them (most attribute values are short: "chat", "openai", "443").
MIN_SENSITIVE_LENGTH = 6

_B = r"(?-u:\b)"          # an ASCII word boundary
_S = r"[\t\n\f\r ]"       # ASCII white space
_S_CHARS = r"\t\n\f\r "   # the same, inside a class
# Key names whose value is a credential, in `key=value`, `key: value` or JSON form.
_SECRET_KEY_NAMES = (
    r"(?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|client[_-]?secret"
    r"|secret[_-]?key)"
)
_PASSWORD_NAMES = r"(?:password|passwd|pwd)"
# A JSON key and its opening quote, possibly escaped (JSON inside a JSON string).
_JSON_KEY_TAIL = rf'\\?"{_S}*:{_S}*\\?"'
_PLAIN_VALUE = rf"""[^{_S_CHARS}"'\\,;&}}]+"""


@dataclass(frozen=True)
class Rule:
    """One kind of sensitive text: what finds it, what replaces it, and when it applies."""

    kind: str
    pattern: str          # Rust `regex` syntax, as polars takes it
    replacement: str      # may refer to groups as ${1}
    secret: bool          # masked under every policy, `keep` included


def _token(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# Order matters: credentials first (an API key may contain digits a phone pattern would
# take), then e-mail addresses, then card numbers (before phones, which are shorter).
RULES: tuple[Rule, ...] = (
    Rule("api_key", rf"{_B}sk-[A-Za-z0-9_-]{{16,}}", _token("api_key"), True),
    Rule("api_key", rf"{_B}AKIA[0-9A-Z]{{16}}{_B}", _token("api_key"), True),
    Rule("api_key", rf"{_B}(?:gh[pousr]_[A-Za-z0-9]{{30,}}|github_pat_[A-Za-z0-9_]{{30,}})",
         _token("api_key"), True),
    Rule("api_key", rf"{_B}xox[abposr]-[A-Za-z0-9-]{{10,}}", _token("api_key"), True),
    Rule("api_key", rf"{_B}AIza[0-9A-Za-z_-]{{35}}", _token("api_key"), True),
    Rule("api_key", rf'(?i)({_SECRET_KEY_NAMES}{_JSON_KEY_TAIL})[^"\\]+',
         "${1}" + _token("api_key"), True),
    Rule("api_key", rf"(?i){_B}({_SECRET_KEY_NAMES}{_S}*[=:]{_S}*['\"]?){_PLAIN_VALUE}",
         "${1}" + _token("api_key"), True),
    Rule("bearer", rf"(?i){_B}(bearer{_S}+)[A-Za-z0-9._~+/=-]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*",
         "${1}" + _token("bearer"), True),
    # A JSON Web Token anywhere (cookies, headers without "Bearer"): header.payload.sig.
    Rule("jwt", rf"{_B}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{8,}}",
         _token("jwt"), True),
    Rule("password", rf'(?i)({_PASSWORD_NAMES}{_JSON_KEY_TAIL})[^"\\]+',
         "${1}" + _token("password"), True),
    Rule("password", rf"(?i){_B}({_PASSWORD_NAMES}{_S}*[=:]{_S}*['\"]?){_PLAIN_VALUE}",
         "${1}" + _token("password"), True),
    Rule("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
         _token("email"), False),
    # Card numbers are handled by CARD_CANDIDATE + Luhn below, between e-mail and phone.
    Rule("phone",
         r"(?:\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){2,4}"
         rf"|\([0-9]{{3}}\)[ .-]?[0-9]{{3}}[ .-]?[0-9]{{4}}|{_B}[0-9]{{3}}[.-][0-9]{{3}}[.-][0-9]{{4}})"
         rf"{_B}",
         _token("phone"), False),
)

# 13 to 19 digits, optionally grouped by spaces or dashes, starting with a digit that
# card networks use (2-6): Unix timestamps (1...) and zero-padded ids never qualify. The
# digits must not follow a dot or a digit (the engine has no look-behind, so the match
# may start with that one character before the digits), so the fraction digits of a
# float such as 0.6367380023002625 are kept.
CARD_CANDIDATE = rf"(?:^|[^0-9.])[2-6](?:[0-9][ -]?){{11,17}}[0-9]{_B}"
CARD_TOKEN = _token("card")
# What every card candidate holds: a first digit, then at least 12 more digits, spaces or
# dashes. A scan for this alone is twice as fast, so it picks the texts to search first.
CARD_RUN = r"[2-6][0-9 -]{12}"


def rules_for(mode: str) -> tuple[Rule, ...]:
    """The rules a policy applies (cards are secrets and handled apart, see CARD_CANDIDATE)."""
    if mode not in MODES:
        raise ValueError(f"unknown privacy mode {mode!r}; expected one of {', '.join(MODES)}")
    return tuple(r for r in RULES if r.secret or mode != "keep")


def detect_pattern(mode: str) -> str:
    """One pattern that matches wherever any rule of the policy (or a card) might."""
    parts = [r.pattern.removeprefix("(?i)") for r in rules_for(mode)] + [CARD_CANDIDATE]
    # Case-insensitive as a whole: harmless for the case-sensitive rules (it only lets more
    # values through to the exact per-rule replacements, which decide).
    return "(?i)" + "|".join(f"(?:{p})" for p in parts)


def redact_array(values: pa.Array | pa.ChunkedArray, mode: str) -> pa.Array:
    """A string column with the policy applied: every value, column-wise.

    Nulls stay null; values with nothing to mask come back as they were.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    column = pl.Series(values=values.cast(pa.string()))
    flagged = ((column.str.len_bytes() >= MIN_SENSITIVE_LENGTH)
               & column.str.contains(detect_pattern(mode))).fill_null(False)
    where = flagged.arg_true()
    if len(where) == 0:
        return values
    redacted = _apply_rules(column.gather(where), mode)
    return column.scatter(where, redacted).to_arrow().cast(pa.string())


def redact_values(values: list[str | None], mode: str = "redact") -> list[str | None]:
    """Redact a handful of strings (for tests and one-off use; batches use redact_array)."""
    return redact_array(pa.array(values, pa.string()), mode).to_pylist()


def _apply_rules(texts: pl.Series, mode: str) -> pl.Series:
    """Each rule of the policy in turn (cards between e-mail and phone), each only on the
    texts where it can match.

    A replacement copies every text it is given, and most texts hold only some kinds
    of sensitive text, so each rule first finds its texts (a scan that copies nothing)
    and replaces in those alone, which gives the same result as replacing in all of
    them. The case-insensitive rules (key names, `bearer`, `password`) are the costly
    ones to scan for, since their literals have too many case forms for the engine to
    skip ahead to; they are looked for in the texts lower-cased, where the rule without
    `(?i)` matches exactly where the rule matches the original: their literals are
    lower-case and their classes hold both cases. That holds for ASCII text, so a text
    with anything else in it is always given to the rule.
    """
    rules = rules_for(mode)
    phone_at = next((i for i, r in enumerate(rules) if r.kind == "phone"), len(rules))
    search = _Search(texts)
    for rule in rules[:phone_at]:
        search.apply(rule)
    search.texts = _redact_cards(search.texts)
    search.lowered = None
    for rule in rules[phone_at:]:
        search.apply(rule)
    return search.texts


class _Search:
    """Texts being redacted, with their lower-cased form kept in step for the
    case-insensitive rules."""

    def __init__(self, texts: pl.Series):
        self.texts = texts.clone()  # replaced in place from here on; the caller's stay
        self.lowered: pl.Series | None = None
        self.not_ascii = texts.str.len_bytes() != texts.str.len_chars()

    def apply(self, rule: Rule) -> None:
        if rule.pattern.startswith("(?i)"):
            if self.lowered is None:
                self.lowered = self.texts.str.to_lowercase()
            found = self.lowered.str.contains(rule.pattern.removeprefix("(?i)")) | self.not_ascii
        else:
            found = self.texts.str.contains(rule.pattern)
        where = found.fill_null(False).arg_true()
        if len(where) == 0:
            return
        replaced = self.texts.gather(where).str.replace_all(rule.pattern, rule.replacement)
        self.texts = self.texts.scatter(where, replaced)
        if self.lowered is not None:
            self.lowered = self.lowered.scatter(where, replaced.str.to_lowercase())


def _redact_cards(texts: pl.Series) -> pl.Series:
    """Replace the card candidates that pass the Luhn check, in the texts holding one."""
    holding = texts.str.contains(CARD_RUN).fill_null(False).arg_true()
    if len(holding) == 0:
        return texts
    holding = holding.gather(texts.gather(holding).str.contains(CARD_CANDIDATE).arg_true())
    if len(holding) == 0:
        return texts
    found = texts.gather(holding).str.extract_all(CARD_CANDIDATE)
    candidates = found.explode().drop_nulls()
    # A match may start with the one character before the digits (see CARD_CANDIDATE).
    candidates = candidates.str.replace(r"^[^0-9]", "")
    valid = candidates.filter(pl.Series(luhn_valid(candidates.to_arrow()))).unique()
    if len(valid) == 0:
        return texts
    patterns = valid.to_list()
    cleaned = texts.gather(holding).str.replace_many(patterns, [CARD_TOKEN] * len(patterns))
    return texts.scatter(holding, cleaned)


def luhn_valid(candidates: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """For each candidate (digits, maybe grouped by spaces or dashes): passes the Luhn
    check. Computed over the bytes of all candidates at once."""
    if isinstance(candidates, pa.ChunkedArray):
        candidates = candidates.combine_chunks()
    digits = pc.replace_substring_regex(candidates.cast(pa.string()), "[^0-9]", "")
    n = len(digits)
    if n == 0:
        return np.zeros(0, dtype=bool)
    offsets = np.frombuffer(digits.buffers()[1], dtype=np.int32)[digits.offset:digits.offset + n + 1]
    data = np.frombuffer(digits.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    values = data.astype(np.int64) - ord("0")
    starts = offsets[:-1] - offsets[0]
    ends = offsets[1:] - offsets[0]
    owner = np.repeat(np.arange(n), ends - starts)
    from_right = ends[owner] - 1 - np.arange(len(values))
    doubled = values * 2
    weighted = np.where(from_right % 2 == 1, np.where(doubled > 9, doubled - 9, doubled), values)
    sums = np.bincount(owner, weights=weighted, minlength=n).astype(np.int64)
    return (sums % 10 == 0) & (ends > starts)
