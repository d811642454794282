"""What a span's events mean to stepscope: the one definition every decoder follows.

Three kinds of span event carry something the steps table keeps; every other event is
kept by name only (`event_names`):

* the first `exception` event gives the step's exception type and message;
* first-token events mark when a streamed answer began (the earliest one counts);
* content events (`gen_ai.*`: messages and choices carried as span events) keep their
  attributes, each key prefixed by the event's name.

OTLP decoding applies these rules event by event (`otlp_decode.RawColumns.add_events`);
the import from the Collector's ClickHouse table applies them in ClickHouse SQL, on
whole arrays of events (`otel_table`). Both take the rules from here, so the two paths
cannot drift apart.
"""

from __future__ import annotations

# Events that mark the first streamed token: OpenInference, OpenLLMetry/Traceloop (one
# event per chunk, so the first one counts), other `*.completion.chunk` writers, and the
# Vercel AI SDK. Time-to-first-token *attributes* are read by normalisation instead.
FIRST_TOKEN_EVENTS = frozenset({
    "First Token Stream Event",
    "llm.content.completion.chunk",
    "gen_ai.content.completion.chunk",
    "gen_ai.completion.chunk",
    "ai.stream.firstChunk",
})
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE_KEY, EXCEPTION_MESSAGE_KEY = "exception.type", "exception.message"
# Events whose attributes are kept (prefixed by the event name): content carried as
# span events, e.g. gen_ai.user.message, gen_ai.choice, gen_ai.content.prompt.
CONTENT_EVENT_PREFIX = "gen_ai."

# The role of an event, tested in this order (a first-token event named `gen_ai.*` is a
# first-token event, not content).
EXCEPTION, FIRST_TOKEN, CONTENT = "exception", "first_token", "content"


def event_role(name: str) -> str | None:
    """EXCEPTION, FIRST_TOKEN, CONTENT, or None for an event kept by name only."""
    if name == EXCEPTION_EVENT:
        return EXCEPTION
    if name in FIRST_TOKEN_EVENTS:
        return FIRST_TOKEN
    if name.startswith(CONTENT_EVENT_PREFIX):
        return CONTENT
    return None


def content_key(event_name: str, key: str) -> str:
    """The key a content event's attribute is kept under."""
    return f"{event_name}.{key}"


# -- the same rules in ClickHouse SQL ------------------------------------------------------


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def event_role_sql(name: str) -> str:
    """ClickHouse expression: the role of the event named by the expression `name`
    (an empty string for an event kept by name only)."""
    first_token = ", ".join(_literal(n) for n in sorted(FIRST_TOKEN_EVENTS))
    return (f"multiIf({name} = {_literal(EXCEPTION_EVENT)}, {_literal(EXCEPTION)}, "
            f"{name} IN ({first_token}), {_literal(FIRST_TOKEN)}, "
            f"startsWith({name}, {_literal(CONTENT_EVENT_PREFIX)}), {_literal(CONTENT)}, '')")


def content_key_sql(event_name: str, key: str) -> str:
    """ClickHouse expression of `content_key` over the expressions given."""
    return f"concat({event_name}, '.', {key})"
