"""Error messages to templates, and templates to stable failure fingerprints.

Two failures are the same failure when they differ only in the values a message carries:
ids, numbers, URLs, e-mail addresses, timestamps, quoted values. The masks below replace
those values with placeholders, turning

    Account acct_3f9a2b1c not found          ->  Account acct_<ID> not found
    Timeout after 30000 ms calling https://…  ->  Timeout after <NUM> ms calling <URL>

They run as SQL `regexp_replace` over the *distinct* messages (RE2 syntax, which DuckDB
and ClickHouse share), never per row in Python, so a million failures with a million
different request ids cost one column-wise pass.

A fingerprint is a hash of what identifies a failure (error type, HTTP status, tool and
template), so it depends on the failure alone: not on the data's order, the window
queried, or any clustering run. That is what lets an alert say "new".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

#: Longest template kept; stack traces and HTML error pages are cut here.
MAX_TEMPLATE_CHARS = 400
#: Fingerprints are this many hex characters of a SHA-256 (64 bits).
FINGERPRINT_HEX_CHARS = 16


@dataclass(frozen=True)
class Mask:
    """One kind of variable value: an RE2 pattern, what replaces each match, and a text
    without which the pattern cannot match (the cheap test that skips the regex)."""

    name: str
    pattern: str
    replacement: str
    needs: str | None = None


# Order matters: wider shapes first (a URL holds numbers, an e-mail holds dots), so that
# each value is masked once, by the most telling placeholder.
_IDENT_CHARS = "A-Za-z_.<>"
MASKS: tuple[Mask, ...] = (
    Mask("url", r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{}.,;:!?]", "<URL>",
         "://"),
    Mask("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", "<EMAIL>",
         "@"),
    Mask("uuid", r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b",
         "<UUID>", "-"),
    Mask("timestamp",
         r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+\-]\d{2}:?\d{2})?)?",
         "<TS>", "-"),
    Mask("time", r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<TS>", ":"),
    # A quoted value is masked unless it reads as a name (a dict key, an error code, a
    # field path): 'overloaded_error' stays, 'req_011CabC3' and "/tmp/x.json" do not.
    Mask("single_quoted", rf"'[^'\s]*[^{_IDENT_CHARS}'\s][^'\s]*'", "'<VAL>'", "'"),
    Mask("double_quoted", rf"\"[^\"\s]*[^{_IDENT_CHARS}\"\s][^\"\s]*\"", "\"<VAL>\"", '"'),
    # Prefixed ids such as acct_3f9a2b1c, req_011CabC3, ch_x7Yq2: keep the prefix, which
    # names the kind of object, and mask the rest.
    Mask("prefixed_id",
         r"\b([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z][A-Za-z0-9]*)*?)_(?:[A-Za-z]*\d[A-Za-z0-9]*|[0-9A-Fa-f]{6,})\b",
         r"\1_<ID>", "_"),
    Mask("hex", r"\b(?:0[xX][0-9A-Fa-f]+|[0-9A-Fa-f]{8,})\b", "<HEX>"),
    Mask("number", r"\b\d+(?:[.,]\d+)*(ms|us|ns|s|m|h|d|k|kb|mb|gb|b|x)?\b", r"<NUM>\1"),
)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def templates_sql(source: str) -> str:
    """A query of (message, template) for each row of `source`, a table or subquery
    with a `message` column.

    The masks apply in order, one query level each, so that a mask whose required text
    is absent skips its regex without repeating the expression; then runs of whitespace
    collapse to one space and the result is cut at `MAX_TEMPLATE_CHARS`.
    """
    query = f"SELECT message, message AS m0 FROM {source}"
    for i, mask in enumerate(MASKS):
        column = f"m{i}"
        replaced = (f"regexp_replace({column}, {_sql_string(mask.pattern)}, "
                    f"{_sql_string(mask.replacement)}, 'g')")
        if mask.needs is not None:
            replaced = (f"CASE WHEN strpos({column}, {_sql_string(mask.needs)}) > 0 "
                        f"THEN {replaced} ELSE {column} END")
        query = f"SELECT message, {replaced} AS m{i + 1} FROM ({query}) AS mask_{mask.name}"
    last = f"m{len(MASKS)}"
    return (f"SELECT message, left(trim(regexp_replace({last}, '\\s+', ' ', 'g')), "
            f"{MAX_TEMPLATE_CHARS}) AS template FROM ({query}) AS masked")


def normalise_messages(messages: Sequence[str | None]) -> list[str | None]:
    """Templates of the given messages, through the same SQL the cluster query runs.

    For inspecting and testing the masks; analytics normalise inside their queries.
    """
    con = duckdb.connect()
    try:
        con.execute("CREATE TEMP TABLE m (i INTEGER, message VARCHAR)")
        con.executemany("INSERT INTO m VALUES (?, ?)", list(enumerate(messages)))
        rows = con.execute(
            f"SELECT t.template FROM m LEFT JOIN ({templates_sql('(SELECT DISTINCT message FROM m)')})"
            " AS t "
            "ON t.message = m.message ORDER BY m.i"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


KEY_SEPARATOR = "\x1f"  # chr(31) in sql/failure_keys.sql, which builds the same key


def failure_key(error_type: str | None, http_status: int | None, tool: str | None,
                template: str | None) -> str:
    """What identifies a failure, as one string; missing parts are empty."""
    return KEY_SEPARATOR.join((
        error_type or "", "" if http_status is None else str(int(http_status)),
        tool or "", template or "",
    ))


def fingerprint_of_key(key: str) -> str:
    """The stable id of a failure key (see `failure_key`)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:FINGERPRINT_HEX_CHARS]


def fingerprint(error_type: str | None, http_status: int | None, tool: str | None,
                template: str | None) -> str:
    """The stable id of a failure: a hash of error type, HTTP status, tool and template.

    It depends on nothing else, so the same failure keeps its id whichever query,
    window or data order produced it.
    """
    return fingerprint_of_key(failure_key(error_type, http_status, tool, template))
